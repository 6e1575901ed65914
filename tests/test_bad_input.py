"""Every row of the bad-input table (tests/bad_inputs.py): the error, its message, and no kernel launch."""
import pytest
import torch
from triton.runtime import interpreter

import fasthg

from bad_inputs import DOC, ROWS, ModuleCall, render, row_id


@pytest.fixture
def launches(monkeypatch):
    """Records every kernel the interpreter runs."""
    launched = []
    original = interpreter.GridExecutor.__call__

    def record(self, *args, **kwargs):
        launched.append(self.fn.__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(interpreter.GridExecutor, "__call__", record)
    return launched


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items() if v.device.type != "meta"}


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_rejected_before_any_kernel(triton_backend, launches, row):
    module = row.call.make() if isinstance(row.call, ModuleCall) else None
    before = _state(module) if module is not None else {}
    with pytest.raises(row.error) as raised:
        module(*row.call.args) if module is not None else row.call()
    message = str(raised.value)
    assert message.startswith(f"{row.argument}: "), f"message does not name {row.argument!r} first: {message}"
    assert row.expect in message, f"{row.expect!r} not in {message!r}"
    assert launches == [], f"kernels launched before the error: {launches}"
    if module is not None:
        after = _state(module)
        assert all(torch.equal(before[k], after[k]) for k in before), "the rejected call changed the module's state"


def test_an_accepted_call_launches_kernels(triton_backend, launches):
    # The launch recorder works: the same op with good arguments runs its kernel.
    fasthg.ops.upsample_add(torch.randn(1, 2, 2, 2), torch.randn(1, 2, 4, 4))
    assert launches == ["upsample_add_forward_kernel"]


def test_the_table_in_docs_is_up_to_date():
    assert DOC.read_text() == render(), "docs/bad_input.md is stale: run `python tests/bad_inputs.py`"
