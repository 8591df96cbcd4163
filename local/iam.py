"""IAM as the local run enforces it, in AWS's order and words (moto's own
evaluator turns a failed Allow condition into a deny, knows only
StringEquals and matches principals by ``*`` only)."""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import operator
import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from local.template import ACCOUNT_ID, PARTITION, TemplateError

log = logging.getLogger(__name__)

#: (access key id, action, resource ARN, request context): None when the
#: call is allowed, else AWS's message for the denial.
Authorize = Callable[[str, str, str, Mapping[str, str]], str | None]

#: Loopback carries the local run's requests in the clear, but each stands
#: for one over TLS (the template's policies deny aws:SecureTransport false).
REQUEST_CONTEXT = {"aws:securetransport": "true"}


def allow_all(*_call: object) -> None:
    """What a lone gateway in a test enforces: any known key may do anything."""


def _like(value: str, pattern: str) -> bool:
    # IAM's wildcards are * (any run, slashes included) and ? (one character).
    return fnmatch.fnmatchcase(value, pattern)


def _number(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    return lambda actual, expected: compare(float(actual), float(expected))


def _folded(actual: str, expected: str) -> bool:
    return actual.lower() == expected.lower()


_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": operator.eq,
    "StringEqualsIgnoreCase": _folded,
    "StringLike": _like,
    "ArnEquals": operator.eq,
    "ArnLike": _like,
    "Bool": _folded,
    "NumericEquals": _number(operator.eq),
    "NumericLessThan": _number(operator.lt),
    "NumericLessThanEquals": _number(operator.le),
    "NumericGreaterThan": _number(operator.gt),
    "NumericGreaterThanEquals": _number(operator.ge),
}
#: Negated operators hold when no value matches, and when the key is absent.
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
}


def _as_list(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in values]


def _condition_holds(
    test: str, key: str, expected: Any, context: Mapping[str, str]
) -> bool:
    values = _as_list(expected)
    actual = context.get(key.lower())
    if test == "Null":
        return (actual is None) == (values[0].lower() == "true")
    name = test.removesuffix("IfExists")
    if actual is None:
        return name != test or name in _NEGATED
    if name in _NEGATED:
        return not any(_OPERATORS[_NEGATED[name]](actual, v) for v in values)
    return any(_OPERATORS[name](actual, v) for v in values)


def check_statements(statements: Iterable[Mapping[str, Any]], *, where: str) -> None:
    """Refuse, before anything runs, what the evaluator cannot evaluate."""
    for statement in statements:
        unknown = {"NotPrincipal"} & set(statement)
        unknown |= {
            test
            for test in statement.get("Condition", {})
            if test != "Null"
            and test.removesuffix("IfExists") not in {*_OPERATORS, *_NEGATED}
        }
        if unknown:
            raise TemplateError(
                f"{where}: the local run cannot evaluate {sorted(unknown)} in "
                f"statement {statement}"
            )


def _matches(statement: Mapping[str, Any], element: str, value: str) -> bool:
    """Whether ``Action`` (case-insensitive) or ``Resource`` of the statement
    covers ``value``; a NotAction covers what it does not name."""
    fold = str.lower if element == "Action" else str
    for name, negated in ((element, False), (f"Not{element}", True)):
        if name in statement:
            patterns = _as_list(statement[name])
            return any(_like(fold(value), fold(p)) for p in patterns) != negated
    return False


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a component acts as: a role it assumed, with the role's
    statements, or a service (CloudFront) that only resource policies allow.

    ``context`` holds the condition keys every request of it carries.
    """

    arn: str
    role_arn: str | None = None
    service: str | None = None
    statements: tuple[Mapping[str, Any], ...] = ()
    context: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def assumed_role(
        cls, role_name: str, session: str, statements: Iterable[Mapping[str, Any]]
    ) -> Principal:
        return cls(
            arn=f"arn:{PARTITION}:sts::{ACCOUNT_ID}:assumed-role/{role_name}/{session}",
            role_arn=f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{role_name}",
            statements=tuple(statements),
        )

    def is_named_by(self, statement: Mapping[str, Any]) -> bool:
        """Whether a resource policy's statement is about this principal."""
        named = statement.get("Principal")
        if named == "*":
            return True
        if not isinstance(named, Mapping):
            return False
        roles = _as_list(named.get("AWS", []))
        services = _as_list(named.get("Service", []))
        return "*" in roles or self.role_arn in roles or self.service in services

    def denial(
        self,
        action: str,
        resource: str,
        context: Mapping[str, str],
        resource_statements: Iterable[Mapping[str, Any]],
    ) -> str | None:
        """None when the call is allowed, else AWS's message for the denial."""
        keys = {
            name.lower(): value
            for name, value in {**REQUEST_CONTEXT, **self.context, **context}.items()
        }

        def applies(statement: Mapping[str, Any]) -> bool:
            return (
                _matches(statement, "Action", action)
                and _matches(statement, "Resource", resource)
                and all(
                    _condition_holds(test, key, expected, keys)
                    for test, condition in statement.get("Condition", {}).items()
                    for key, expected in condition.items()
                )
            )

        named = [s for s in resource_statements if self.is_named_by(s)]
        found = {
            "identity-based": [s for s in self.statements if applies(s)],
            "resource-based": [s for s in named if applies(s)],
        }
        who = (
            f"User: {self.arn} is not authorized to perform: {action} on "
            f"resource: {resource}"
        )
        for kind, statements in found.items():
            if any(s.get("Effect") == "Deny" for s in statements):
                article = "an" if kind.startswith("i") else "a"
                return f"{who} with an explicit deny in {article} {kind} policy"
        if any(statements for statements in found.values()):
            return None
        kind = "identity-based" if self.role_arn else "resource-based"
        return f"{who} because no {kind} policy allows the {action} action"


@dataclasses.dataclass(frozen=True)
class AccessKey:
    """A fake access key, one per component; it names no real account."""

    access_key_id: str
    secret_access_key: str

    @classmethod
    def generate(cls) -> AccessKey:
        alphabet = string.ascii_uppercase + string.digits
        return cls(
            "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16)),
            secrets.token_urlsafe(30),
        )


class AccessControl:
    """The access keys of the local run and what each may do.

    ``setup`` stands for CloudFormation creating the resources: it may do
    anything. Every other key is issued to one principal, and its calls are
    judged by that principal's statements and ``resource_statements`` (the
    bucket and queue policies, each naming its own resources).
    """

    def __init__(
        self,
        resource_statements: Iterable[Mapping[str, Any]],
        *,
        setup: AccessKey,
    ) -> None:
        self._resource_statements = tuple(resource_statements)
        check_statements(self._resource_statements, where="resource policies")
        self._keys: dict[str, tuple[AccessKey, Principal | None]] = {
            setup.access_key_id: (setup, None)
        }
        #: Every denial so far, in AWS's words.
        self.denials: list[str] = []

    def issue(self, principal: Principal) -> AccessKey:
        check_statements(principal.statements, where=principal.arn)
        key = AccessKey.generate()
        self._keys[key.access_key_id] = (key, principal)
        return key

    def secret_for(self, access_key_id: str) -> str | None:
        known = self._keys.get(access_key_id)
        return known[0].secret_access_key if known else None

    def authorize(
        self,
        access_key_id: str,
        action: str,
        resource: str,
        context: Mapping[str, str],
    ) -> str | None:
        """An :data:`Authorize` for keys whose signature was verified."""
        principal = self._keys[access_key_id][1]
        if principal is None:
            return None
        denial = principal.denial(action, resource, context, self._resource_statements)
        if denial is not None:
            log.warning("denied: %s", denial)
            self.denials.append(denial)
        return denial
