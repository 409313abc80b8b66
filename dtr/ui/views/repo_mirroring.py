"""The Mirroring tab of a repository (its admins): its push and poll mirroring policies, each with
its last run's status (create, delete, run now). The same use cases as ``/api/v0``'s
``pushMirroringPolicies`` and ``pollMirroringPolicies`` (``dtr.mirroring.policies``), which check
admin access themselves. Credentials are sealed at rest and never shown: a policy says only
whether a password or token is set, and a failed form never echoes one.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from dtr.api.errors import APIError, codes
from dtr.jobs.service import JobService
from dtr.keys import AUTH, CONFIG, DATABASE
from dtr.mirroring import policies as p
from dtr.mirroring import shapes as s
from dtr.trust.sealing import Sealer
from dtr.ui.render import render
from dtr.ui.security import visitor
from dtr.ui.views.common import Form, redirect, refused, repo_url, with_query
from dtr.ui.views.repo_tabs import names, open_tab, tab_handler

DIRECTIONS = (p.PUSH, p.POLL)
SPECS: dict[str, type[s.PushPolicySpec] | type[s.PollPolicySpec]] = {p.PUSH: s.PushPolicySpec,
                                                                     p.POLL: s.PollPolicySpec}
FIELDS = ("direction", "remote_host", "remote_repository", "username", "password", "tag_template", "schedule",
          "tag_operator", "tag_values")
TAG_OPERATORS = ("", "eq", "sw", "ew", "c", "matches")
#: The form field beside which a use case's error shows, by the API field its message names.
ERROR_FIELDS = {"remoteRepository": "remote_repository", "tagTemplate": "tag_template", "schedule": "schedule",
                "rules": "tag_values", "remoteCredentials": "username"}


def mirroring_caller(request: web.Request) -> p.Caller:
    """The visitor as the mirroring use cases take it."""
    cfg = request.config_dict[CONFIG]
    engine = request.config_dict[DATABASE].engine
    return p.Caller(engine, visitor(request).principal, request.remote or "", request.config_dict[AUTH],
                    JobService(engine, cfg.jobs.stop_timeout, cfg.jobs.worker_timeout), Sealer.from_config(cfg))


async def _show(request: web.Request, form: Form, status: int = 200) -> web.StreamResponse:
    ctx = await open_tab(request, "mirroring", "Mirroring", admin=True)
    ns, name = names(request)
    c = mirroring_caller(request)
    try:
        found = {d: await p.list_policies(c, d, ns, name) for d in DIRECTIONS}
    except APIError as e:
        return refused(request, e)
    return render(request, "repository_mirroring.html", {
        **ctx, "policies": found, "directions": DIRECTIONS, "operators": TAG_OPERATORS, **form.context(),
        "done": request.query.get("done", "")[:300]}, status)


@tab_handler
async def page(request: web.Request) -> web.StreamResponse:
    return await _show(request, Form({"direction": p.PUSH, "tag_template": "%n"}))


def _spec(form: Form, direction: str) -> dict[str, Any]:
    """The API's body of the policy the form describes (camelCase)."""
    body: dict[str, Any] = {"remoteHost": form.text("remote_host", "Remote host", required=True, max_length=512),
                            "remoteRepository": form.text("remote_repository", "Remote repository", required=True,
                                                          max_length=255)}
    user, password = form.values.get("username", "").strip(), form.values.get("password", "")
    if user or password:
        body["remoteCredentials"] = {"username": user or None, "password": password or None}
    op, values = form.values.get("tag_operator", ""), form.values.get("tag_values", "").strip()
    if op:
        body["rules"] = [{"field": "tag", "operator": op, "values": [values] if values else []}]
    if direction == p.PUSH:
        body["tagTemplate"] = form.text("tag_template", "Remote tag", max_length=128) or "%n"
    elif schedule := form.text("schedule", "Schedule", max_length=255):
        body["schedule"] = schedule
    return body


@tab_handler
async def create(request: web.Request) -> web.StreamResponse:
    ns, name = names(request)
    form = await Form.read(request, *FIELDS)
    direction = form.choice("direction", "Direction", DIRECTIONS)
    form.choice("tag_operator", "Tag rule", TAG_OPERATORS)
    body = _spec(form, direction) if direction in DIRECTIONS else {}
    form.values["password"] = ""  # never echoed
    if not form.errors:
        try:
            policy = p.parse(direction, SPECS[direction].model_validate(body))
            await p.create_policy(mirroring_caller(request), ns, name, policy)
        except ValidationError as e:
            form.errors["remote_host"] = f"{'.'.join(map(str, e.errors()[0]['loc']))}: {e.errors()[0]['msg']}"
        except APIError as e:
            if e.code != codes.INVALID_MIRRORING_POLICY:
                return refused(request, e)
            field = ERROR_FIELDS.get(e.message.partition(":")[0].partition("[")[0], "remote_host")
            form.errors[field] = e.message
        else:
            done = f"{direction} mirroring policy created"
            return redirect(with_query(repo_url(f"{ns}/{name}", "/mirroring"), done=done))
    return await _show(request, form, 400)


def _direction(request: web.Request) -> str:
    d = request.match_info["direction"]
    if d not in DIRECTIONS:
        raise APIError(codes.NO_SUCH_MIRRORING_POLICY)
    return d


@tab_handler
async def delete(request: web.Request) -> web.StreamResponse:
    ns, name = names(request)
    try:
        await p.delete_policy(mirroring_caller(request), _direction(request), ns, name,
                              p.policy_id(request.match_info["id"]))
    except APIError as e:
        return refused(request, e)
    return redirect(with_query(repo_url(f"{ns}/{name}", "/mirroring"), done="Policy deleted"))


@tab_handler
async def run(request: web.Request) -> web.StreamResponse:
    """Queue the policy's job now; the page shows its status once it ran (reload)."""
    ns, name = names(request)
    try:
        job = await p.run_policy(mirroring_caller(request), _direction(request), ns, name,
                                 p.policy_id(request.match_info["id"]))
    except APIError as e:
        return refused(request, e)
    return redirect(with_query(repo_url(f"{ns}/{name}", "/mirroring"), done=f"Run queued (job {job['id']})"))


def register(app: web.Application) -> None:
    base = "/repositories/{ns}/{repo}/mirroring"
    app.router.add_get(base, page)
    app.router.add_post(base, create)
    app.router.add_post(base + "/{direction}/{id}/delete", delete)
    app.router.add_post(base + "/{direction}/{id}/run", run)
