"""Role-based access decisions: the role table, name scopes, server-wide actions, listings."""

from __future__ import annotations

import pytest

from modelport.core.errors import PermissionDenied
from modelport.security.identity import AuthMethod, Grant, Identity, Role
from modelport.security.rbac import Action, authorize, is_allowed, visible


def who(*grants: str, subject: str = "key:abc") -> Identity:
    parsed = []
    for text in grants:
        role, _, pattern = text.partition(":")
        parsed.append(Grant(Role.parse(role), pattern or "*"))
    return Identity(subject, tuple(parsed), AuthMethod.API_KEY)


def test_each_action_needs_its_role() -> None:
    assert {a: a.role for a in Action} == {
        Action.HEALTH: Role.VIEWER,
        Action.METADATA: Role.VIEWER,
        Action.METRICS: Role.VIEWER,
        Action.INFER: Role.PREDICTOR,
        Action.MANAGE: Role.DEPLOYER,
        Action.ADMIN: Role.ADMIN,
    }


# role held -> the actions it allows (higher roles include lower ones)
TABLE = {
    "viewer": {Action.HEALTH, Action.METADATA, Action.METRICS},
    "predictor": {Action.HEALTH, Action.METADATA, Action.METRICS, Action.INFER},
    "deployer": {Action.HEALTH, Action.METADATA, Action.METRICS, Action.INFER, Action.MANAGE},
    "admin": set(Action),
}


@pytest.mark.parametrize("role", list(TABLE))
@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("name", ["fraud", None])
def test_role_hierarchy(role: str, action: Action, name: str | None) -> None:
    identity = who(role)
    allowed = action in TABLE[role]
    assert is_allowed(identity, action, name) is allowed
    if allowed:
        authorize(identity, action, name)
    else:
        with pytest.raises(PermissionDenied):
            authorize(identity, action, name)


def test_scope_patterns() -> None:
    identity = who("predictor:fraud-*", "viewer:credit-*")
    authorize(identity, Action.INFER, "fraud-eu")
    authorize(identity, Action.METADATA, "fraud-eu")
    authorize(identity, Action.METADATA, "credit-x")
    # Inside the scope with too low a role: the role is the problem.
    with pytest.raises(
        PermissionDenied,
        match=r"^key:abc may not infer on model 'credit-x' \(needs predictor, has viewer\)$",
    ):
        authorize(identity, Action.INFER, "credit-x")
    with pytest.raises(PermissionDenied, match="may not manage model 'fraud-eu'"):
        authorize(identity, Action.MANAGE, "fraud-eu")
    # Outside every pattern: the scope is the problem, whatever the role.
    with pytest.raises(
        PermissionDenied,
        match=r"^model 'other' is outside the scope of key:abc \(credit-\*, fraud-\*\)$",
    ):
        authorize(identity, Action.METADATA, "other")
    # Patterns are shell-style and case-sensitive; "fraud" itself is not "fraud-*".
    with pytest.raises(PermissionDenied):
        authorize(identity, Action.INFER, "fraud")
    with pytest.raises(PermissionDenied):
        authorize(identity, Action.INFER, "FRAUD-eu")


def test_several_grants_add_up() -> None:
    identity = who("viewer", "deployer:fraud-*")
    authorize(identity, Action.METADATA, "credit-x")
    authorize(identity, Action.MANAGE, "fraud-us")
    with pytest.raises(PermissionDenied):
        authorize(identity, Action.INFER, "credit-x")


def test_server_wide_actions_need_the_role_over_everything() -> None:
    scoped = who("admin:fraud-*")
    authorize(scoped, Action.ADMIN, "fraud-eu")
    with pytest.raises(
        PermissionDenied,
        match=r"^key:abc may not administer this server \(needs admin over '\*'\)$",
    ):
        authorize(scoped, Action.ADMIN, None)
    with pytest.raises(PermissionDenied, match="may not read this server"):
        authorize(scoped, Action.METADATA, None)
    authorize(who("admin"), Action.ADMIN, None)
    authorize(who("deployer:*"), Action.MANAGE, None)
    with pytest.raises(PermissionDenied, match="may not manage this server"):
        authorize(who("predictor"), Action.MANAGE, None)


def test_message_does_not_depend_on_existence() -> None:
    # authorize() never sees the registry: the refusal for a model that exists and for one that
    # does not is built from the same inputs, so it reads the same.
    identity = who("predictor:fraud-*")
    existing, missing = "credit-x", "credit-does-not-exist"
    messages = []
    for name in (existing, missing):
        with pytest.raises(PermissionDenied) as info:
            authorize(identity, Action.INFER, name)
        messages.append(info.value.message.replace(name, "<name>"))
    assert messages[0] == messages[1] == "model '<name>' is outside the scope of key:abc (fraud-*)"


def test_noun_in_the_message() -> None:
    with pytest.raises(PermissionDenied, match="may not manage deployment 'fraud'"):
        authorize(who("viewer"), Action.MANAGE, "fraud", what="deployment")


def test_no_grants_allows_nothing() -> None:
    nobody = Identity("jwt:bob", (), AuthMethod.JWT)
    for action in Action:
        assert not is_allowed(nobody, action, "x")
        assert not is_allowed(nobody, action, None)
    assert visible(nobody, ["a", "b"]) == []


def test_visible_filters_listings_in_order() -> None:
    names = ["credit-x", "fraud-eu", "churn", "fraud-us", "fraud"]
    assert visible(who("predictor:fraud-*"), names) == ["fraud-eu", "fraud-us"]
    assert visible(who("viewer:churn", "admin:fraud-*"), names) == ["fraud-eu", "churn", "fraud-us"]
    assert visible(who("viewer"), iter(names)) == names
