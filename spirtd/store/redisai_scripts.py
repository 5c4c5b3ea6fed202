"""TorchScript versions of spirtd.aggregation and spirtd.optim, for a real
RedisAI (the "redisai" backend). No I/O here: the backend stores SCRIPT with

    AI.SCRIPTSTORE key CPU ENTRY_POINTS 7 spirt_mean ... SOURCE <SCRIPT>

and runs an entry point with

    AI.SCRIPTEXECUTE key spirt_multikrum KEYS n k... INPUTS n k... ARGS 2 f m OUTPUTS 2 dst sel

Every entry point is def name(tensors: List[Tensor], keys: List[str],
args: List[str]); keys[i] names tensors[i] in error messages (so KEYS must
list the inputs first, in INPUTS order; where keys run out, messages give
the index), args arrive as strings. The math is the numpy references' step
for step: float64 throughout, one rounding to the inputs' dtype at the end.
Every float input is checked to be finite.

Every rule of spirtd.aggregation.RULES has one entry point, spirt_<rule>
(entry_point), whose args are the rule's declared options in order, each
as RuleOption.wire_values writes it; an option the call leaves out is left
out of args (only the last ones can be). A bound on f is one function here,
as in the numpy rule and the native module (tests compare the three). A
whole-vector statistic given to a rule instead of computed by it is one
more tensor after the inputs and one more arg after the options
(redisai_statistics.py).

Written for RedisAI's own TorchScript compiler, which is stricter than
Python's torch.jit: `torch` names built-in operators only, so dtypes are
their ScalarType codes (6 for float32, not torch.float32), and no
exception class is defined, so an error is `assert False, message` (RedisAI
replies "...AssertionError: message"; the backend keeps the message).
tests/store compiles this with a real AI.SCRIPTSTORE as well as torch.jit.

    spirt_mean(inputs; args [] or n weights)            -> [mean]
    spirt_median(inputs; args [])                       -> [median]
    spirt_trimmed_mean(inputs; args [b])                -> [trimmed mean]
    spirt_krum(inputs; args [f])                        -> [chosen input, [its index]]
    spirt_multikrum(inputs; args [f, m] or [f] for m = n-f)
                                                        -> [mean of chosen, chosen]
                                     (chosen: int64, best first)
      (every rule: (inputs, given statistics; args, "given:<name>" for each))
    spirt_statistic(inputs; args [name])                -> [statistic, float64]
    spirt_sgd([param, grad(, buf)]; args [lr, momentum, dampening, nesterov 0/1,
              weight_decay, maximize 0/1])              -> [param] or [param, buf]
    spirt_adam([param, grad, exp_avg, exp_avg_sq, step (int64 [1])];
               args [lr, beta1, beta2, eps, weight_decay, decoupled 0/1, maximize 0/1
               (, given: which of exp_avg, exp_avg_sq, step are among the tensors,
               e.g. "000" for the first step: what is missing starts at zero)])
                                                        -> [param, exp_avg, exp_avg_sq, step]
"""

from __future__ import annotations

from spirtd.aggregation import RULES, Rule
from spirtd.aggregation.krum import MAX_INPUTS as KRUM_MAX_INPUTS
from spirtd.aggregation.statistics import MAX_INPUTS as STATISTIC_MAX_INPUTS
from spirtd.store.redisai_optim import OPTIM_SOURCE
from spirtd.store.redisai_statistics import statistics_source

# torch's ScalarType codes, which TorchScript takes wherever a dtype goes.
SCALAR_TYPES = {"INT64": 4, "FLOAT32": 6, "FLOAT64": 7}
# Elements of a mean done at a time: 512 KiB of float64 stays in cache, and
# pieces this big keep the interpreter's cost per piece small (measured:
# 32768 and 131072 were slower on 2.54M and 11.7M elements).
MEAN_PIECE = 65536
# What RedisAI puts before the message of a failed assert.
ASSERTION_PREFIX = "AssertionError: "



def entry_point(rule: Rule) -> str:
    """The TorchScript function that runs a rule."""
    return "spirt_" + rule.name


# One entry point per rule of the registry, the statistics, then the optimizer steps.
ENTRY_POINTS: tuple[str, ...] = (
    *(entry_point(rule) for rule in RULES.values()),
    "spirt_statistic",
    "spirt_sgd",
    "spirt_adam",
)

_HELPERS = """
def _key(keys: List[str], i: int) -> str:
    if i < len(keys):
        return "'" + keys[i] + "'"
    return str(i)


def _dtype_name(t: Tensor) -> str:
    if t.dtype == FLOAT32:
        return "float32"
    if t.dtype == FLOAT64:
        return "float64"
    if t.dtype == INT64:
        return "int64"
    return "dtype code " + str(t.dtype)


def _check_count(args: List[str], want: List[int], what: str):
    if len(args) not in want:
        assert False, (what + " takes " + str(want) + " args; got " + str(len(args)))


def _num(args: List[str], i: int, name: str) -> float:
    s = args[i]
    ok = len(s) > 0
    for c in s:
        if c not in "0123456789.eE+-":
            ok = False
    if not ok:
        assert False, (name + " must be a number, got '" + s + "'")
    v = float(s)
    if v != v or v - v != 0.0 or v < 0.0:
        assert False, (name + " must be finite and >= 0, got " + s)
    return v


def _int(args: List[str], i: int, name: str, minimum: int) -> int:
    s = args[i]
    ok = len(s) > 0
    for c in s:
        if c not in "0123456789":
            ok = False
    if not ok:
        assert False, (name + " must be an integer >= " + str(minimum) + ", got '" + s + "'")
    v = int(s)
    if v < minimum:
        assert False, (name + " must be an integer >= " + str(minimum) + ", got " + s)
    return v


def _flag(args: List[str], i: int, name: str) -> bool:
    if args[i] == "1":
        return True
    if args[i] == "0":
        return False
    assert False, (name + " must be 0 or 1, got '" + args[i] + "'")


def _check_finite(t: Tensor, role: str, keys: List[str], i: int):
    bad = torch.nonzero(torch.logical_not(torch.isfinite(t.reshape(-1))))
    if bad.size(0) > 0:
        assert False, (role + " " + _key(keys, i) + " has a non-finite value at element "
                         + str(int(bad[0, 0].item())) + "; nothing was written")


def _check_float(t: Tensor, role: str, keys: List[str], i: int, what: str):
    if t.dtype != FLOAT32 and t.dtype != FLOAT64:
        assert False, (role + " " + _key(keys, i) + " has dtype " + _dtype_name(t)
                         + "; " + what + " needs float32 or float64")


def _check_like(t: Tensor, like: Tensor, role: str, keys: List[str], i: int, other: str):
    if t.dtype != like.dtype or t.size() != like.size():
        assert False, (role + " " + _key(keys, i) + " is " + _dtype_name(t) + " "
                         + str(t.size()) + " but " + other + " is " + _dtype_name(like)
                         + " " + str(like.size()))


def _check_all(tensors: List[Tensor], keys: List[str]):
    # dtype and shape of every input (no pass over the data)
    if len(tensors) == 0:
        assert False, ("aggregation needs at least one input; got 0")
    first = tensors[0]
    for i in range(len(tensors)):
        _check_float(tensors[i], "input", keys, i, "aggregation")
        _check_like(tensors[i], first, "input", keys, i, "input " + _key(keys, 0))


def _stack(tensors: List[Tensor], keys: List[str]) -> Tensor:
    _check_all(tensors, keys)
    for i in range(len(tensors)):
        _check_finite(tensors[i], "input", keys, i)
    return torch.stack([t.reshape(-1).to(FLOAT64) for t in tensors])


def _finish(value: Tensor, like: Tensor, rule: str) -> Tensor:
    out = value.to(like.dtype).reshape(like.size())
    if not bool(torch.isfinite(out).all()):
        assert False, (rule + " overflowed: the result is not finite although every input is")
    return out


def _mean_rows(x: Tensor, order: List[int]) -> Tensor:
    acc = x[order[0]].clone()
    for k in order[1:]:
        acc = acc + x[k]
    return acc * (1.0 / len(order))
"""

_AGGREGATION = """
def _mean_in_float64(tensors: List[Tensor], w: List[float], scale: float) -> Tensor:
    # scale * sum_k w_k x_k (sum_k x_k with no weights), in index order, in
    # float64, rounded once to the inputs' dtype: the numpy reference's
    # order and roundings. Done a cache-sized piece at a time, so that each
    # input is read once and only the result is written. No input is
    # checked here: _finish_sum's result is finite unless an input is not
    # (or float64 inputs overflow the sum).
    flat = [t.reshape(-1) for t in tensors]
    size = flat[0].numel()
    out = torch.empty([size], dtype=tensors[0].dtype)
    acc = torch.empty([min(size, MEAN_PIECE)], dtype=FLOAT64)
    start = 0
    while start < size:
        end = min(start + MEAN_PIECE, size)
        a = acc[: end - start]
        a.copy_(flat[0][start:end])
        if len(w) > 0:
            a.mul_(w[0])
        for k in range(1, len(flat)):
            if len(w) > 0:
                a.add_(flat[k][start:end].to(FLOAT64) * w[k])
            else:
                a.add_(flat[k][start:end])
        out[start:end].copy_(a.mul_(scale))
        start = end
    return out


def _finish_sum(value: Tensor, tensors: List[Tensor], keys: List[str], rule: str) -> Tensor:
    # _finish for a result whose inputs were not checked: one that is not
    # finite names the first input that is not, or else overflowed.
    out = value.reshape(tensors[0].size())
    if not bool(torch.isfinite(out).all()):
        for i in range(len(tensors)):
            _check_finite(tensors[i], "input", keys, i)
        assert False, (rule + " overflowed: the result is not finite although every input is")
    return out


def spirt_mean(tensors: List[Tensor], keys: List[str], args: List[str]):
    tensors, args, given = _take_given(tensors, keys, args, "mean")
    _check_all(tensors, keys)
    n = len(tensors)
    if len(args) == 0:
        return [_finish_sum(_mean_in_float64(tensors, [], 1.0 / n), tensors, keys, "mean")]
    if len(args) != n:
        assert False, ("weights needs one weight per input (" + str(n) + "); got "
                         + str(len(args)))
    w = [_num(args, k, "weights") for k in range(n)]
    total = 0.0
    for wk in w:
        total += wk
    if total == 0.0:
        assert False, ("weights must not all be zero")
    return [_finish_sum(_mean_in_float64(tensors, w, 1.0 / total), tensors, keys, "mean")]


def spirt_median(tensors: List[Tensor], keys: List[str], args: List[str]):
    tensors, args, given = _take_given(tensors, keys, args, "median")
    _check_count(args, [0], "median")
    x = _stack(tensors, keys)
    n = x.size(0)
    s = torch.sort(x, dim=0).values
    mid = (n - 1) // 2
    if n % 2 == 1:
        return [_finish(s[mid], tensors[0], "median")]
    return [_finish((s[mid] + s[mid + 1]) * 0.5, tensors[0], "median")]


def _trimmed_mean_min_inputs(b: int) -> int:
    # spirtd.aggregation.trimmed_mean.min_inputs
    return 2 * b + 1


def spirt_trimmed_mean(tensors: List[Tensor], keys: List[str], args: List[str]):
    tensors, args, given = _take_given(tensors, keys, args, "trimmed_mean")
    _check_count(args, [1], "trimmed_mean")
    b = _int(args, 0, "b", 0)
    n = len(tensors)
    if n < _trimmed_mean_min_inputs(b):
        assert False, ("trimmed_mean drops b=" + str(b) + " values at each end, so it needs "
                         + "more than 2b=" + str(_trimmed_mean_min_inputs(b) - 1)
                         + " inputs; got " + str(n))
    s = _stack(tensors, keys)
    if b > 0:
        s = torch.sort(s, dim=0).values
    acc = s[b].clone()
    for k in range(b + 1, n - b):
        acc = acc + s[k]
    return [_finish(acc / (n - 2 * b), tensors[0], "trimmed_mean")]


def _krum_min_inputs(f: int) -> int:
    # spirtd.aggregation.krum.min_inputs: n >= 2f + 3
    return 2 * f + 3


def _check_krum_inputs(n: int, f: int, rule: str):
    if n > KRUM_MAX_INPUTS:
        assert False, (rule + " compares every pair of inputs and takes at most "
                         + str(KRUM_MAX_INPUTS) + "; got " + str(n))
    if n < _krum_min_inputs(f):
        assert False, (rule + " tolerates f faulty inputs only with n >= 2f+3: f=" + str(f)
                         + " needs at least " + str(_krum_min_inputs(f)) + " inputs, got "
                         + str(n))


def _pairwise_squared_distances(x: Tensor) -> Tensor:
    # the statistic PAIRWISE_SQUARED_DISTANCES (spirtd.aggregation.statistics)
    n = x.size(0)
    dist = torch.zeros([n, n], dtype=FLOAT64)
    for i in range(n - 1):
        diff = x[i + 1:] - x[i]
        dist[i, i + 1:] = (diff * diff).sum(dim=1)
    return dist + dist.t()


def _krum_select(tensors: List[Tensor], keys: List[str], f: int, m: int, rule: str,
                 given: Dict[str, Tensor]):
    # [mean of the m best-scored inputs, their indices best first]
    n = len(tensors)
    x = _stack(tensors, keys)
    # a copy: a given tensor is RedisAI's, and the diagonal is overwritten
    dist = _statistics(x, given, rule)["pairwise_squared_distances"].clone()
    if not bool(torch.isfinite(dist).all()):
        assert False, (rule + " overflowed: distances between inputs are not finite "
                         + "although every input is")
    dist.fill_diagonal_(float("inf"))
    nearest = torch.sort(dist, dim=1).values[:, : n - f - 2]
    scores = torch.cumsum(nearest, dim=1)[:, -1]
    chosen = torch.sort(scores, stable=True).indices[:m]
    order: List[int] = chosen.tolist()
    return [_finish(_mean_rows(x, order), tensors[0], rule), chosen.to(INT64)]


def spirt_krum(tensors: List[Tensor], keys: List[str], args: List[str]):
    tensors, args, given = _take_given(tensors, keys, args, "krum")
    _check_count(args, [1], "krum")
    f = _int(args, 0, "f", 0)
    _check_krum_inputs(len(tensors), f, "krum")
    return _krum_select(tensors, keys, f, 1, "krum", given)


def spirt_multikrum(tensors: List[Tensor], keys: List[str], args: List[str]):
    tensors, args, given = _take_given(tensors, keys, args, "multikrum")
    _check_count(args, [1, 2], "multikrum")
    f = _int(args, 0, "f", 0)
    n = len(tensors)
    m = n - f
    if len(args) == 2:
        m = _int(args, 1, "m", 1)
    _check_krum_inputs(n, f, "multikrum")
    if m > n - f:
        assert False, ("multikrum averages m of the n-f best-scored inputs: m=" + str(m)
                         + " is more than n-f=" + str(n - f))
    return _krum_select(tensors, keys, f, m, "multikrum", given)
"""

def _source() -> str:
    """TorchScript has no module constants: limits and dtype codes are
    written into the source."""
    text = _HELPERS + statistics_source(RULES) + _AGGREGATION + OPTIM_SOURCE
    text = text.replace("KRUM_MAX_INPUTS", str(KRUM_MAX_INPUTS))
    text = text.replace("STATISTIC_MAX_INPUTS", str(STATISTIC_MAX_INPUTS))
    text = text.replace("MEAN_PIECE", str(MEAN_PIECE))
    for name, code in SCALAR_TYPES.items():
        text = text.replace(name, str(code))
    return text


SCRIPT: str = _source()
