"""The constructors type checkers see (``if TYPE_CHECKING: def __init__``) match the fields.

The plan's records declare their stored types (``tuple[Step, ...]``, ``timedelta``) and, for
type checkers, a constructor taking what users write (lists, ``"15m"``). Runtime validation is
pydantic's, from the fields; this keeps the two in step when a field is added.
"""

from __future__ import annotations

import ast
import inspect

import pytest
from pydantic import BaseModel

import outreach._models as models

SOURCE = ast.parse(inspect.getsource(models))


def _stub(name: str) -> ast.FunctionDef:
    [cls] = [n for n in SOURCE.body if isinstance(n, ast.ClassDef) and n.name == name]
    for node in cls.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for inner in node.body:
                if isinstance(inner, ast.FunctionDef) and inner.name == "__init__":
                    return inner
    raise AssertionError(f"{name} has no constructor for type checkers")


@pytest.mark.parametrize(
    "model",
    [
        models.RetryPolicy,
        models.Step,
        models.Option,
        models.QuietHours,
        models.FollowUp,
        models.Plan,
    ],
    ids=lambda m: m.__name__,
)
def test_the_typed_constructor_lists_every_field(model: type[BaseModel]) -> None:
    stub = _stub(model.__name__)
    assert not stub.args.args[1:], "keyword-only, as pydantic's own constructor"
    assert not stub.args.vararg
    assert not stub.args.kwarg
    names = [a.arg for a in stub.args.kwonlyargs]
    defaults = zip(stub.args.kwonlyargs, stub.args.kw_defaults, strict=True)
    optional = {arg.arg for arg, default in defaults if default is not None}
    fields = model.model_fields
    assert names == list(fields)
    assert optional == {name for name, f in fields.items() if not f.is_required()}


def test_recipient_needs_no_stub() -> None:
    """Its field types are what users pass already."""
    with pytest.raises(AssertionError, match="no constructor"):
        _stub("Recipient")
