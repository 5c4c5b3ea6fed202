"""The RedisAI backend: a real RedisAI (tested: v1.2.7 with its torch
backend, on Redis 6.2 and 7.0) at a URL the user gives.

Tensors go through AI.TENSORSET / AI.TENSORGET; every aggregation rule and
optimizer step is a TorchScript function (spirtd.store.redisai_scripts) that
RedisAI runs in the database with AI.SCRIPTEXECUTE. RedisAI has no partial
tensor writes or digests, so those are done with Lua inside the database
(chunks) or pulled out (digest).

The script lives in an ordinary key, SCRIPT_KEY (reserved): it is stored
on first use and again whenever RedisAI says it is missing (after a
FLUSHALL, or a restart without persistence). A whole-vector statistic given to a rule is
stored as a float64 tensor for the call. RedisAI's errors do not name
the key that was missing or not a tensor, nor keep a script's message
apart from its traceback: the backend finds the key, and keeps the message.
An optimizer step writes its outputs only when it succeeds; state that does
not exist yet is not created beforehand but starts at zero in the script,
so a refused step leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Sequence

import numpy as np

from redis.exceptions import ResponseError

from spirtd.aggregation import RULES, RuleCall, Statistic
from spirtd.aggregation.base import Statistics
from spirtd.errors import AggregationError, BackendUnsupported, InvalidTensor, StoreError, TensorNotFound, WrongType
from spirtd.optim import AdamConfig, SgdConfig
from spirtd.store import redisai_scripts
from spirtd.store.redisai_statistics import GIVEN_PREFIX
from spirtd.store.api import TensorMeta, error_text, translate
from spirtd.store.native import NativeStore

# RedisAI takes a tensor in one argument, and Redis limits one argument to
# proto-max-bulk-len (512 MB by default).
REDISAI_MAX_BLOB = 512 << 20
SCRIPT_KEY = "spirt:scripts:" + hashlib.sha256(redisai_scripts.SCRIPT.encode()).hexdigest()[:12]
SELECTED_SUFFIX = ":spirt-selected"
# Where a statistic given to a rule, or computed, waits for the script or
# for the caller (reserved; deleted when the call ends).
GIVEN_SUFFIX = ":spirt-given:"
STATISTIC_SUFFIX = ":spirt-statistic:"
# RedisAI's words for an AI.SCRIPTEXECUTE whose script key holds nothing, and
# for an input that is missing (in every shard) or not a tensor.
SCRIPT_MISSING = "script key is empty"
KEY_MISSING = "tensor key is empty"
TENSOR_TYPE = "AI_TENSOR"
ADAM_STATE_ORDER = ("exp_avg", "exp_avg_sq", "step")

# The entry point of every rule of the registry.
ENTRY_POINT = {name: redisai_scripts.entry_point(rule) for name, rule in RULES.items()}

# Splices bytes into a tensor inside the database: RedisAI cannot write part
# of a tensor, so the tensor is rebuilt there rather than pulled out.
LUA_WRITE_CHUNK = """
local blob = redis.call('AI.TENSORGET', KEYS[1], 'BLOB')
local off = tonumber(ARGV[1])
local data = ARGV[2]
if off < 0 or off + #data > #blob then
  return redis.error_reply('ERR ' .. #data .. ' bytes at offset ' .. off ..
    ' do not fit in a tensor of ' .. #blob .. ' bytes')
end
local meta = redis.call('AI.TENSORGET', KEYS[1], 'META')
local args = {KEYS[1], meta[2]}
for _, d in ipairs(meta[4]) do table.insert(args, d) end
table.insert(args, 'BLOB')
table.insert(args, string.sub(blob, 1, off) .. data .. string.sub(blob, off + #data + 1))
return redis.call('AI.TENSORSET', unpack(args))
"""

LUA_READ_CHUNK = """
local blob = redis.call('AI.TENSORGET', KEYS[1], 'BLOB')
local off = tonumber(ARGV[1])
local len = tonumber(ARGV[2])
if off < 0 or len < 0 or off + len > #blob then
  return redis.error_reply('ERR ' .. len .. ' bytes at offset ' .. off ..
    ' do not fit in a tensor of ' .. #blob .. ' bytes')
end
return string.sub(blob, off + 1, off + len)
"""

# RedisAI tensors have no COPY: the tensor is set again from its bytes,
# inside the database.
LUA_COPY = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local meta = redis.call('AI.TENSORGET', KEYS[1], 'META')
local args = {KEYS[2], meta[2]}
for _, d in ipairs(meta[4]) do table.insert(args, d) end
table.insert(args, 'BLOB')
table.insert(args, redis.call('AI.TENSORGET', KEYS[1], 'BLOB'))
redis.call('AI.TENSORSET', unpack(args))
return 1
"""

# Turns a staged string into a tensor and drops the string, atomically.
LUA_COMMIT_STAGING = """
local blob = redis.call('GET', KEYS[1])
local args = {KEYS[2]}
for i = 1, #ARGV do table.insert(args, ARGV[i]) end
table.insert(args, 'BLOB')
table.insert(args, blob)
redis.call('AI.TENSORSET', unpack(args))
redis.call('DEL', KEYS[1])
return 'OK'
"""


def scriptexecute_args(
    fn: str,
    inputs: Sequence[str],
    outputs: Sequence[str],
    args: Sequence[str] = (),
) -> list[object]:
    """AI.SCRIPTEXECUTE's arguments: KEYS (every key touched), INPUTS, ARGS,
    then OUTPUTS, in the order RedisAI requires. KEYS lists the inputs first,
    one per input even if repeated: the scripts name tensors[i] by keys[i]."""
    keys = [*inputs, *outputs]
    cmd: list[object] = ["AI.SCRIPTEXECUTE", SCRIPT_KEY, fn, "KEYS", len(keys), *keys]
    cmd += ["INPUTS", len(inputs), *inputs]
    if args:
        cmd += ["ARGS", len(args), *args]
    cmd += ["OUTPUTS", len(outputs), *outputs]
    return cmd


def rule_args(call: RuleCall) -> list[str]:
    """A rule's ARGS: the options it declares, in order, that the call has
    (defaults filled in), as strings."""
    return [text for option, value in call.sent_options() for text in option.wire_values(value)]


def _flag(value: bool) -> str:
    return "1" if value else "0"


class RedisAIStore(NativeStore):
    backend = "redisai"

    def __init__(self, client, *, chunk_bytes: int = REDISAI_MAX_BLOB) -> None:
        super().__init__(client, chunk_bytes=min(chunk_bytes, REDISAI_MAX_BLOB))
        self._script_stored = False

    async def write_chunk(self, key: str, offset: int, data: bytes | memoryview) -> None:
        await self._call("EVAL", LUA_WRITE_CHUNK, 1, key, int(offset), data, key=key)

    async def read_chunk(self, key: str, offset: int, length: int) -> bytes:
        return await self._call("EVAL", LUA_READ_CHUNK, 1, key, int(offset), int(length), key=key)

    async def copy(self, src: str, dst: str) -> bool:
        return bool(await self._call("EVAL", LUA_COPY, 2, src, dst, key=src))

    async def digest(self, key: str) -> str:
        blob = await self._call("AI.TENSORGET", key, "BLOB", key=key)
        return hashlib.sha256(blob).hexdigest()

    # Pieces are staged in a string and become a tensor at commit.
    async def _begin_staging(self, staging: str, meta: TensorMeta) -> None:
        if meta.nbytes > REDISAI_MAX_BLOB:
            raise BackendUnsupported(
                f"RedisAI takes a tensor in one argument, at most {REDISAI_MAX_BLOB} bytes; "
                f"this one has {meta.nbytes}"
            )
        await self._call("SETRANGE", staging, meta.nbytes - 1, b"\x00")

    async def _write_staging(self, staging: str, offset: int, data: bytes | memoryview) -> None:
        await self._call("SETRANGE", staging, int(offset), data)

    async def _commit_staging(self, staging: str, key: str, meta: TensorMeta) -> None:
        await self._call(
            "EVAL", LUA_COMMIT_STAGING, 2, staging, key, meta.dtype.value, *meta.shape, key=key
        )

    async def _store_script(self) -> None:
        await self._call(
            "AI.SCRIPTSTORE", SCRIPT_KEY, "CPU",
            "ENTRY_POINTS", len(redisai_scripts.ENTRY_POINTS), *redisai_scripts.ENTRY_POINTS,
            "SOURCE", redisai_scripts.SCRIPT,
        )  # fmt: skip
        self._script_stored = True

    async def _execute(self, fn: str, inputs: Sequence[str], outputs: Sequence[str], args: Sequence[str],
                       *, aggregation: bool) -> None:  # fmt: skip
        """Runs an entry point; stores the script first when it is not there
        (yet, or any more); RedisAI's error becomes one of the error tree's,
        naming the key."""
        if not self._script_stored:
            await self._store_script()
        command = scriptexecute_args(fn, inputs, outputs, args)
        try:
            await self._call(*command)
        except StoreError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ResponseError):
                raise
            if SCRIPT_MISSING in error_text(cause):
                await self._store_script()
                try:
                    await self._call(*command)
                    return
                except StoreError as again:
                    cause = again.__cause__
                    if not isinstance(cause, ResponseError):
                        raise
            raise await self._explain(cause, inputs, aggregation=aggregation) from cause

    async def _explain(self, exc: ResponseError, inputs: Sequence[str], *, aggregation: bool) -> StoreError | AggregationError:
        text = error_text(exc)
        prefix = redisai_scripts.ASSERTION_PREFIX
        if prefix in text:
            message = text.rsplit(prefix, 1)[1].strip()
            return AggregationError(message) if aggregation else InvalidTensor(message)
        if KEY_MISSING in text or text.startswith("WRONGTYPE"):
            for key, kind in zip(inputs, await self._types(inputs)):
                if kind == "none":
                    return TensorNotFound(f"input tensor {key!r} does not exist")
                if kind != TENSOR_TYPE:
                    return WrongType(f"WRONGTYPE input {key!r} holds a value that is not a tensor")
        return translate(exc)

    async def _types(self, keys: Sequence[str]) -> list[str]:
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.type(key)
            found = await pipe.execute()
        return [k.decode() if isinstance(k, bytes) else str(k) for k in found]

    async def _existing(self, keys: Sequence[str]) -> list[bool]:
        return [kind != "none" for kind in await self._types(keys)]

    async def _aggregate(
        self, dst: str, call: RuleCall, inputs: list[str], given: Statistics
    ) -> tuple[int, ...] | None:
        fn = ENTRY_POINT[call.rule.name]
        stats = [stat for stat in Statistic if stat in given]
        given_keys = [dst + GIVEN_SUFFIX + stat.value for stat in stats]
        args = [*rule_args(call), *(GIVEN_PREFIX + stat.value for stat in stats)]
        selected_key = dst + SELECTED_SUFFIX
        outputs = [dst, selected_key] if call.rule.selects else [dst]
        try:
            for key, stat in zip(given_keys, stats):
                await self.set(key, np.asarray(given[stat], dtype=np.float64))
            await self._execute(fn, [*inputs, *given_keys], outputs, args, aggregation=True)
            if not call.rule.selects:
                return None
            values = await self._call("AI.TENSORGET", selected_key, "VALUES")
        finally:
            await self.delete(*given_keys, *outputs[1:])
        return tuple(int(v) for v in values)

    async def _statistic(self, stat: Statistic, inputs: list[str]) -> np.ndarray:
        out = inputs[0] + STATISTIC_SUFFIX + secrets.token_hex(8)
        try:
            await self._execute("spirt_statistic", inputs, [out], [stat.value], aggregation=True)
            return np.array(await self.get(out), dtype=np.float64)
        finally:
            await self.delete(out)

    async def sgd_step(
        self, param: str, grad: str, cfg: SgdConfig, *, buffer: str | None = None
    ) -> None:
        if cfg.momentum > 0 and buffer is None:
            raise InvalidTensor("SGD with momentum needs a buffer key for its state")
        inputs, outputs = [param, grad], [param]
        if cfg.momentum > 0 and buffer is not None:
            if (await self._existing([buffer]))[0]:
                inputs.append(buffer)
            outputs.append(buffer)
        args = [repr(cfg.lr), repr(cfg.momentum), repr(cfg.dampening), _flag(cfg.nesterov),
                repr(cfg.weight_decay), _flag(cfg.maximize)]  # fmt: skip
        await self._execute("spirt_sgd", inputs, outputs, args, aggregation=False)

    async def adam_step(
        self, param: str, grad: str, cfg: AdamConfig, *, exp_avg: str, exp_avg_sq: str, step: str
    ) -> int:
        state = [exp_avg, exp_avg_sq, step]
        given = await self._existing(state)
        args = [repr(cfg.lr), repr(cfg.betas[0]), repr(cfg.betas[1]), repr(cfg.eps),
                repr(cfg.weight_decay), _flag(cfg.decoupled), _flag(cfg.maximize),
                "".join("1" if g else "0" for g in given)]  # fmt: skip
        inputs = [param, grad, *(key for key, g in zip(state, given) if g)]
        await self._execute("spirt_adam", inputs, [param, *state], args, aggregation=False)
        return int((await self._call("AI.TENSORGET", step, "VALUES"))[0])
