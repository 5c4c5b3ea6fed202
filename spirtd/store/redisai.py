"""The RedisAI backend: a real RedisAI (v1.2) at a URL the user gives.

Tensors go through AI.TENSORSET / AI.TENSORGET; every aggregation rule and
optimizer step is a TorchScript function (spirtd.store.redisai_scripts) that
RedisAI runs in the database with AI.SCRIPTEXECUTE. RedisAI has no partial
tensor writes or digests, so those are done with Lua inside the database
(chunks) or pulled out (digest).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from spirtd.aggregation import RuleCall
from spirtd.errors import BackendUnsupported, InvalidTensor
from spirtd.optim import AdamConfig, SgdConfig
from spirtd.store import redisai_scripts
from spirtd.store.api import DType, TensorMeta, check_shape
from spirtd.store.native import NativeStore

# RedisAI takes a tensor in one argument, and Redis limits one argument to
# proto-max-bulk-len (512 MB by default).
REDISAI_MAX_BLOB = 512 << 20
SCRIPT_KEY = "spirt:scripts:" + hashlib.sha256(redisai_scripts.SCRIPT.encode()).hexdigest()[:12]
SELECTED_SUFFIX = ":spirt-selected"

ENTRY_POINT = {
    "mean": "spirt_mean",
    "median": "spirt_median",
    "trimmed_mean": "spirt_trimmed_mean",
    "krum": "spirt_krum",
    "multikrum": "spirt_krum",
}

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
    name, opts = call.rule.name, call.options
    if name == "mean":
        weights = opts.get("weights")
        return [repr(float(w)) for w in weights] if weights is not None else []
    if name == "trimmed_mean":
        return [str(int(opts["b"]))]
    if name in ("krum", "multikrum"):
        return [str(int(opts["f"])), str(int(opts.get("m", 1)))]
    return []


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

    async def _ensure_script(self) -> None:
        if self._script_stored:
            return
        await self._call(
            "AI.SCRIPTSTORE", SCRIPT_KEY, "CPU",
            "ENTRY_POINTS", len(redisai_scripts.ENTRY_POINTS), *redisai_scripts.ENTRY_POINTS,
            "SOURCE", redisai_scripts.SCRIPT,
        )  # fmt: skip
        self._script_stored = True

    async def _aggregate(
        self, dst: str, call: RuleCall, inputs: list[str]
    ) -> tuple[int, ...] | None:
        await self._ensure_script()
        fn = ENTRY_POINT[call.rule.name]
        if fn != "spirt_krum":
            await self._work(scriptexecute_args(fn, inputs, [dst], rule_args(call)), aggregation=True)
            return None
        selected_key = dst + SELECTED_SUFFIX
        try:
            await self._work(
                scriptexecute_args(fn, inputs, [dst, selected_key], rule_args(call)),
                aggregation=True,
            )
            values = await self._call("AI.TENSORGET", selected_key, "VALUES")
        finally:
            await self.delete(selected_key)
        return tuple(int(v) for v in values)

    async def _zeros_like(self, key: str, like: TensorMeta) -> None:
        if not await self.exists(key):
            await self.create(key, like.dtype, like.shape)

    async def sgd_step(
        self, param: str, grad: str, cfg: SgdConfig, *, buffer: str | None = None
    ) -> None:
        if cfg.momentum > 0 and buffer is None:
            raise InvalidTensor("SGD with momentum needs a buffer key for its state")
        await self._ensure_script()
        inputs, outputs = [param, grad], [param]
        if cfg.momentum > 0 and buffer is not None:
            if await self.exists(buffer):
                inputs.append(buffer)
            outputs.append(buffer)
        args = [repr(cfg.lr), repr(cfg.momentum), repr(cfg.dampening), _flag(cfg.nesterov),
                repr(cfg.weight_decay), _flag(cfg.maximize)]  # fmt: skip
        await self._work(scriptexecute_args("spirt_sgd", inputs, outputs, args), aggregation=False)

    async def adam_step(
        self, param: str, grad: str, cfg: AdamConfig, *, exp_avg: str, exp_avg_sq: str, step: str
    ) -> int:
        await self._ensure_script()
        like = await self.meta(param)
        await self._zeros_like(exp_avg, like)
        await self._zeros_like(exp_avg_sq, like)
        if not await self.exists(step):
            await self.create(step, DType.INT64, check_shape([1]))
        args = [repr(cfg.lr), repr(cfg.betas[0]), repr(cfg.betas[1]), repr(cfg.eps),
                repr(cfg.weight_decay), _flag(cfg.decoupled), _flag(cfg.maximize)]  # fmt: skip
        keys = [param, exp_avg, exp_avg_sq, step]
        await self._work(
            scriptexecute_args("spirt_adam", [param, grad, exp_avg, exp_avg_sq, step], keys, args),
            aggregation=False,
        )
        return int((await self._call("AI.TENSORGET", step, "VALUES"))[0])

