"""The Pruning tab of a repository (site admins, as the pruning use cases are): its pruning
policies (list, create with rules, delete), its tag limit, and what they would prune now (the
preview ``GET /api/v0/repositories/NS/REPO/pruningPolicies/test`` answers), shown as tags.

The same use cases as ``/api/v0`` (``dtr.jobs.policies``), which check site admin access themselves.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dtr.api.errors import APIError, codes
from dtr.jobs import policies, pruning
from dtr.jobs.caller import Caller
from dtr.jobs.service import JobService
from dtr.keys import CONFIG, DATABASE, REGISTRY
from dtr.ui.render import render
from dtr.ui.security import visitor
from dtr.ui.views.common import Form, redirect, refused, repo_url, with_query
from dtr.ui.views.repo_tabs import names, open_tab, tab_handler

#: Rule rows on the create form (a policy may have more through the API).
RULE_ROWS = 3
FIELDS = tuple(pruning.FIELDS)
OPERATORS = tuple(dict.fromkeys(op for ops in pruning.FIELDS.values() for op in ops))
LIST_OPERATORS = ("oneof", "noneof")


def jobs_caller(request: web.Request) -> Caller:
    """The visitor as the jobs use cases (pruning) take it."""
    cfg = request.config_dict[CONFIG].jobs
    jobs = JobService(request.config_dict[DATABASE].engine, cfg.stop_timeout, cfg.worker_timeout)
    return Caller(jobs.engine, visitor(request).principal, request.remote or "", jobs, request.config_dict[REGISTRY])


def _full(request: web.Request) -> str:
    ns, name = names(request)
    return f"{ns}/{name}"


#: The preview lists this many tags (by name) and counts the rest: a page stays small.
PREVIEW_SHOWN = 200


async def _show(request: web.Request, form: Form, limit_form: Form | None = None,
                status: int = 200) -> web.StreamResponse:
    ctx = await open_tab(request, "pruning", "Pruning", site_admin=True)
    c, full = jobs_caller(request), _full(request)
    try:
        found = await policies.list_policies(c, full)
        settings = await policies.get_settings(c, full)
        # The preview reads every tag: loaded after the page (htmx), or inline when asked for.
        preview = await policies.would_prune(c, full) if request.query.get("preview") else None
    except APIError as e:
        return refused(request, e)
    limit = limit_form or Form({"tag_limit": "" if settings.tag_limit is None else str(settings.tag_limit)})
    return render(request, "repository_pruning.html", {
        **ctx, "policies": found, "preview": preview, "preview_shown": PREVIEW_SHOWN,
        "preview_url": f"/ui/repositories/{full}/pruning/preview", "rows": range(RULE_ROWS), "fields": FIELDS,
        "operators": ("", *OPERATORS), **form.context(), "limit": limit.values, "limit_errors": limit.errors,
        "done": request.query.get("done", "")[:200]}, status)


@tab_handler
async def page(request: web.Request) -> web.StreamResponse:
    return await _show(request, Form({"enabled": "on"}))


@tab_handler
async def preview(request: web.Request) -> web.StreamResponse:
    """The preview alone (the fragment the tab loads after the page); the use case checks access."""
    try:
        found = await policies.would_prune(jobs_caller(request), _full(request))
    except APIError as e:
        return refused(request, e)
    return render(request, "_pruning_preview.html", {"preview": found, "preview_shown": PREVIEW_SHOWN})


def _rules(form: Form) -> list[dict[str, Any]]:
    """The filled rule rows as the API's rules (a row without an operator is skipped)."""
    rules = []
    for i in range(RULE_ROWS):
        op = form.values.get(f"operator{i}", "")
        if not op:
            continue
        raw = form.values.get(f"values{i}", "").strip()
        if op == "never":
            values: list[str] = []
        elif op in LIST_OPERATORS:
            values = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            values = [raw] if raw else []
        rules.append({"field": form.values.get(f"field{i}", ""), "operator": op, "values": values})
    return rules


@tab_handler
async def create(request: web.Request) -> web.StreamResponse:
    fields = [f"{k}{i}" for i in range(RULE_ROWS) for k in ("field", "operator", "values")]
    form = await Form.read(request, *fields, "keep_newest", "enabled")
    raw: dict[str, Any] = {"rules": _rules(form), "enabled": bool(form.values["enabled"])}
    keep = form.text("keep_newest", "Keep newest", max_length=9)
    if keep and not keep.isdigit():
        form.errors["keep_newest"] = "Keep newest is a whole number of tags"
    elif keep:
        raw["keepNewest"] = int(keep)
    if not form.errors:
        try:
            policy = pruning.Policy.parse(raw)
        except pruning.PolicyError as e:
            form.errors["rules"] = str(e)
        else:
            try:
                await policies.create_policy(jobs_caller(request), _full(request), policy)
            except APIError as e:
                return refused(request, e)
            return redirect(with_query(repo_url(_full(request), "/pruning"), done="Policy created"))
    return await _show(request, form, status=400)


@tab_handler
async def delete(request: web.Request) -> web.StreamResponse:
    try:
        await policies.delete_policy(jobs_caller(request), _full(request), policies.policy_id(request.match_info["id"]))
    except APIError as e:
        return refused(request, e)
    return redirect(with_query(repo_url(_full(request), "/pruning"), done="Policy deleted"))


@tab_handler
async def set_limit(request: web.Request) -> web.StreamResponse:
    """Set the tag limit (empty: none); immutability stays as it is (the Settings tab changes it)."""
    form = await Form.read(request, "tag_limit")
    raw = form.text("tag_limit", "Tag limit", max_length=9)
    if raw and (not raw.isdigit() or int(raw) < 1):
        form.errors["tag_limit"] = "Tag limit is a whole number of tags, at least 1 (empty: no limit)"
    if not form.errors:
        c, full = jobs_caller(request), _full(request)
        try:
            current = await policies.get_settings(c, full)
            await policies.put_settings(c, full, policies.Settings(int(raw) if raw else None, current.immutable_tags))
        except APIError as e:
            if e.code != codes.INVALID_SETTINGS:
                return refused(request, e)
            form.errors["tag_limit"] = e.message
        else:
            return redirect(with_query(repo_url(full, "/pruning"), done="Tag limit saved"))
    return await _show(request, Form({"enabled": "on"}), form, 400)


def register(app: web.Application) -> None:
    app.router.add_get("/repositories/{ns}/{repo}/pruning", page)
    app.router.add_get("/repositories/{ns}/{repo}/pruning/preview", preview)
    app.router.add_post("/repositories/{ns}/{repo}/pruning/policies", create)
    app.router.add_post("/repositories/{ns}/{repo}/pruning/policies/{id}/delete", delete)
    app.router.add_post("/repositories/{ns}/{repo}/pruning/limit", set_limit)
