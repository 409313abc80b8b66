"""Targets roles and their delegations: the ``keys``/``roles`` structure notary checks
(``isValidTargetsStructure``, ``isValidRootRoleStructure``), the roles a targets file delegates to
(paths restricted to the parent's, as ``DelegationRole.Restrict``), and the walk from ``targets``
down to a delegation (``Repo.GetDelegationRole``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import posixpath
from collections.abc import Mapping
from typing import Any

from dtr.trust.certs import certificate_error
from dtr.trust.metadata import is_delegation
from dtr.trust.tufkeys import PublicKey, parse_key


@dataclasses.dataclass(frozen=True)
class Role:
    """A role that signs targets files: its keys, threshold and the target paths it may sign."""

    name: str
    keys: dict[str, PublicKey]
    threshold: int
    paths: tuple[str, ...] = ("",)


def invalid(role: str, msg: str) -> str:
    """notary's ``ErrInvalidMetadata`` text."""
    return f"{role} type metadata invalid: {msg}"


def parse_keys(obj: Any, role: str) -> dict[str, PublicKey]:
    """A ``keys`` map, every key parsed and listed under its own id; ValueError (notary's wording) otherwise."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ValueError(invalid(role, "keys is not an object"))
    keys: dict[str, PublicKey] = {}
    for kid, key_obj in obj.items():
        try:
            key = parse_key(key_obj)
        except ValueError as e:
            raise ValueError(invalid(role, f"key {kid[:80]}: {e}")) from None
        if key.key_id != kid:
            raise ValueError(invalid(role, f"key ID {kid[:80]} does not match its key ({key.key_id})"))
        keys[kid] = key
    return keys


def role_structure_error(role: str, name: str, obj: Any, keys: Mapping[str, PublicKey]) -> str | None:
    """``isValidRootRoleStructure``: threshold >= 1 and every key id present in ``keys``."""
    if not isinstance(obj, dict):
        return invalid(role, f"role {name} is not an object")
    threshold, keyids = obj.get("threshold", 0), obj.get("keyids") or []
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        return invalid(role, f"invalid threshold specified for {name}: {threshold!r} ")
    if not isinstance(keyids, list) or not all(isinstance(k, str) for k in keyids):
        return invalid(role, f"keyids of {name} are not a list of strings")
    if threshold < 1:
        return invalid(role, f"invalid threshold specified for {name}: {threshold} ")
    for kid in keyids:
        if kid not in keys:
            return invalid(role, f"key ID {kid} specified in {name} without corresponding key")
    return None


def _targets_error(role: str, targets: Any) -> str | None:
    if not isinstance(targets, dict):
        return invalid(role, "targets is not an object")
    for name, meta in targets.items():
        hashes = meta.get("hashes") if isinstance(meta, dict) else None
        length = meta.get("length") if isinstance(meta, dict) else None
        if (not isinstance(hashes, dict) or not all(isinstance(h, str) for h in hashes.values())
                or not isinstance(length, int) or isinstance(length, bool) or length < 0):
            return invalid(role, f"target {name[:120]} needs a length and base64 hashes")
    return None


def targets_structure_error(signed: dict[str, Any], role: Role) -> str | None:
    """``isValidTargetsStructure`` for ``role``'s file, plus dtr's rule that every delegated path lies
    within ``role``'s paths (notary silently narrows such paths instead)."""
    name = role.name
    if signed.get("_type") != "Targets":
        return invalid(name, f"expected type Targets, not {signed.get('_type')}")
    if signed.get("version", 0) < 1:
        return invalid(name, "version cannot be less than one")
    if err := _targets_error(name, signed.get("targets") or {}):
        return err
    delegations = signed.get("delegations") or {}
    if not isinstance(delegations, dict) or not isinstance(delegations.get("roles") or [], list):
        return invalid(name, "delegations is not an object with a roles list")
    try:
        keys = parse_keys(delegations.get("keys"), name)
    except ValueError as e:
        return str(e)
    for obj in delegations.get("roles") or []:
        child = obj.get("name") if isinstance(obj, dict) else None
        if not isinstance(child, str) or not is_delegation(child) or posixpath.dirname(child) != name:
            return invalid(name, f"delegation role {child} invalid")
        if err := role_structure_error(name, child, obj, keys):
            return err
        paths = obj.get("paths") or []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            return invalid(name, f"paths of delegation role {child} are not a list of strings")
        outside = [p for p in paths if not any(p.startswith(q) for q in role.paths)]
        if outside:
            return invalid(name, f"delegation role {child} has paths outside of {name}'s paths: {outside[0][:120]}")
    return None


def restrict(parent: tuple[str, ...], paths: list[str]) -> tuple[str, ...]:
    """``RestrictDelegationPathPrefixes``: the child's paths that lie within one of the parent's."""
    return tuple(p for p in paths if any(p.startswith(q) for q in parent))


def children(signed: dict[str, Any], parent: Role) -> list[Role]:
    """The roles ``parent``'s (structurally valid) file delegates to, paths restricted to the parent's."""
    delegations = signed.get("delegations") or {}
    keys = parse_keys(delegations.get("keys"), parent.name)
    found = []
    for obj in delegations.get("roles") or []:
        found.append(Role(obj["name"], {k: keys[k] for k in obj.get("keyids") or []}, obj["threshold"],
                          restrict(parent.paths, obj.get("paths") or [])))
    return found


def find_role(name: str, targets: Role, loaded: Mapping[str, dict[str, Any]], now: dt.datetime) -> Role | str:
    """The delegation ``name`` as its ancestors declare it (walking down from ``targets`` through the
    ``loaded`` signed parts), or notary's error text when a link is missing or a key's certificate is bad."""
    role = targets
    parts = name.split("/")
    for depth in range(2, len(parts) + 1):
        want = "/".join(parts[:depth])
        signed = loaded.get(role.name)
        match = next((c for c in children(signed, role) if c.name == want), None) if signed is not None else None
        if match is None:
            return f"tuf: invalid role {name}. delegation does not exist"
        role = match
    for key in role.keys.values():
        cert = key.certificate()
        if cert is not None and (err := certificate_error(cert, check_expiry=False, now=now)):
            return err
    return role
