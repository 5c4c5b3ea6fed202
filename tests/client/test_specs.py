"""What spirt_client's submit sends for each way of giving a spec."""

from __future__ import annotations

import json

import pytest

from spirt_client.specs import spec_text

SPEC = {"model": "mlp", "dataset": "digits", "rounds": 3}
TOML = 'model = "mlp"\ndataset = "digits"\nrounds = 3\n'


@pytest.mark.parametrize(
    "given, want",
    [
        (SPEC, (json.dumps(SPEC), "json")),
        (json.dumps(SPEC), (json.dumps(SPEC), "json")),  # one line of JSON is text, not a file name
        ("  " + json.dumps(SPEC, indent=1), ("  " + json.dumps(SPEC, indent=1), "json")),
        (TOML, (TOML, "toml")),
        ('rounds = 3', ('rounds = 3', "toml")),
    ],
    ids=["dict", "json-line", "json-text", "toml-text", "toml-line"],
)
def test_a_spec_as_a_dict_or_text(given, want):
    assert spec_text(given) == want


def test_a_spec_as_a_path_takes_its_format_from_the_suffix_or_the_text(tmp_path):
    (tmp_path / "a.toml").write_text(TOML)
    (tmp_path / "a.json").write_text(json.dumps(SPEC))
    (tmp_path / "spec").write_text(json.dumps(SPEC))
    assert spec_text(tmp_path / "a.toml") == (TOML, "toml")
    assert spec_text(str(tmp_path / "a.json")) == (json.dumps(SPEC), "json")
    assert spec_text(str(tmp_path / "spec")) == (json.dumps(SPEC), "json")


def test_a_missing_spec_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no job spec file at {tmp_path}/gone.toml"):
        spec_text(str(tmp_path / "gone.toml"))
    with pytest.raises(TypeError, match="a job spec is a dict, a path or the text"):
        spec_text(3)


def test_a_submit_may_take_longer_than_the_clients_timeout_the_other_calls_not():
    """A submit waits for every member to record the job: given up after the
    client's 10 s on a busy machine, it left a recorded job the user would
    submit again (found running the quickstart notebook)."""
    from spirt_client import Client
    from spirt_client import calls

    with Client("127.0.0.1:1", insecure=True, timeout_s=10) as client:
        assert client._deadline(calls.submit({"model": "mlp", "dataset": "digits"})) == calls.SUBMIT_TIMEOUT_S >= 60
        assert client._deadline(calls.cancel("j1")) == calls.SUBMIT_TIMEOUT_S  # it reaches every member too
        assert client._deadline(calls.status()) == 10
        assert client._deadline(calls.events("j1")) is None  # a watch lasts as long as the job
    with Client("127.0.0.1:1", insecure=True, timeout_s=300) as client:
        assert client._deadline(calls.submit({"model": "mlp", "dataset": "digits"})) == 300


async def test_a_call_on_a_closed_client_says_so():
    """A watch thread still running as the client closes (make demo's, on
    Ctrl-C) got grpc's bare "Cannot invoke RPC: Channel closed!" ValueError,
    a traceback out of its thread."""
    import asyncio

    from spirt_client import AsyncClient, Client, ClientClosed, ClientError

    client = Client("127.0.0.1:1", insecure=True)
    client.close()
    for call in (client.status, lambda: next(iter(client.events("j1")))):
        with pytest.raises(ClientClosed, match="the client of spirtd at 127.0.0.1:1 is closed"):
            call()
    assert issubclass(ClientClosed, ClientError)
    aclient = AsyncClient("127.0.0.1:1", insecure=True)
    await aclient.aclose()
    with pytest.raises(ClientClosed):
        await aclient.status()
    with pytest.raises(ClientClosed):
        await asyncio.wait_for(anext(aiter(aclient.events("j1"))), 5)
