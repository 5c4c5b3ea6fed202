"""The optimizer steps of the RedisAI backend's script, as TorchScript
source: SGD (momentum, Nesterov, weight decay) and Adam/AdamW, all-or-nothing
(missing state counts as zero inside the script; nothing is created before
it runs). redisai_scripts.py joins it to the helpers and the aggregation
rules into the one script stored in RedisAI; the helpers it calls (_key,
_num, _check_... ) are defined there."""

OPTIM_SOURCE = """
def _check_step_inputs(tensors: List[Tensor], keys: List[str], roles: List[str]):
    param = tensors[0]
    _check_float(param, "parameter", keys, 0, "an optimizer step")
    for i in range(1, len(roles)):
        _check_like(tensors[i], param, roles[i], keys, i, "the parameter " + _key(keys, 0))
    _check_finite(tensors[1], "gradient", keys, 1)
    for i in range(len(roles)):
        if i != 1:
            _check_finite(tensors[i], roles[i], keys, i)


def spirt_sgd(tensors: List[Tensor], keys: List[str], args: List[str]):
    _check_count(args, [6], "spirt_sgd")
    lr = _num(args, 0, "lr")
    momentum = _num(args, 1, "momentum")
    dampening = _num(args, 2, "dampening")
    nesterov = _flag(args, 3, "nesterov")
    wd = _num(args, 4, "weight_decay")
    maximize = _flag(args, 5, "maximize")
    if nesterov and (momentum <= 0.0 or dampening != 0.0):
        assert False, ("nesterov needs momentum > 0 and dampening 0")
    if len(tensors) not in [2, 3]:
        assert False, ("spirt_sgd takes [param, grad] or [param, grad, buf]; got "
                         + str(len(tensors)) + " tensors")
    if momentum == 0.0:
        tensors = tensors[:2]  # plain SGD keeps no buffer; one given is ignored
    _check_step_inputs(tensors, keys, ["parameter", "gradient", "momentum buffer"][: len(tensors)])
    param = tensors[0]
    p = param.to(FLOAT64)
    g = tensors[1].to(FLOAT64)
    if maximize:
        g = -g
    d = g + wd * p
    if momentum == 0.0:
        return [(p - lr * d).to(param.dtype)]
    b = d
    if len(tensors) == 3:
        b = momentum * tensors[2].to(FLOAT64) + (1.0 - dampening) * d
    if nesterov:
        d = d + momentum * b
    else:
        d = b
    return [(p - lr * d).to(param.dtype), b.to(param.dtype)]


def spirt_adam(tensors: List[Tensor], keys: List[str], args: List[str]):
    _check_count(args, [7, 8], "spirt_adam")
    lr = _num(args, 0, "lr")
    b1 = _num(args, 1, "beta1")
    b2 = _num(args, 2, "beta2")
    eps = _num(args, 3, "eps")
    wd = _num(args, 4, "weight_decay")
    decoupled = _flag(args, 5, "decoupled")
    maximize = _flag(args, 6, "maximize")
    if b1 >= 1.0 or b2 >= 1.0:
        assert False, ("beta1 and beta2 must be in [0, 1)")
    given = "111"
    if len(args) == 8:
        given = args[7]
    if len(given) != 3 or given.strip("01") != "":
        assert False, ("the given-state mask must be three 0/1 digits, got '" + given + "'")
    want = 2
    for c in given:
        if c == "1":
            want += 1
    if len(tensors) != want:
        assert False, ("spirt_adam takes [param, grad] and the state tensors the mask gives ("
                       + given + ": " + str(want) + " tensors); got " + str(len(tensors)) + " tensors")
    # State not given (not there yet: the first step) starts at zero.
    state: List[Tensor] = []
    j = 2
    for i in range(3):
        if given[i] == "1":
            state.append(tensors[j])
            j += 1
        elif i < 2:
            state.append(torch.zeros_like(tensors[0]))
        else:
            state.append(torch.zeros([1], dtype=INT64))
    tensors = [tensors[0], tensors[1], state[0], state[1], state[2]]
    _check_step_inputs(tensors, keys, ["parameter", "gradient", "exp_avg", "exp_avg_sq"])
    st = tensors[4]
    if st.dtype != INT64 or st.numel() != 1 or int(st.reshape(-1)[0].item()) < 0:
        assert False, ("step " + _key(keys, 4)
                         + " must be an int64 tensor of shape [1] holding a step count")
    t = int(st.reshape(-1)[0].item()) + 1
    param = tensors[0]
    p = param.to(FLOAT64)
    g = tensors[1].to(FLOAT64)
    if maximize:
        g = -g
    shrink = 1.0
    coupled_wd = wd
    if decoupled:
        shrink = 1.0 - lr * wd
        coupled_wd = 0.0
    g = g + coupled_wd * p
    m0 = tensors[2].to(FLOAT64)
    v0 = tensors[3].to(FLOAT64)
    m = m0 + (1.0 - b1) * (g - m0)
    v = b2 * v0 + (1.0 - b2) * g * g
    step_size = lr / (1.0 - b1 ** t)
    bc2_sqrt = float(torch.sqrt(torch.full([1], 1.0 - b2 ** t, dtype=FLOAT64)).item())
    new_p = p * shrink - step_size * m / (torch.sqrt(v) / bc2_sqrt + eps)
    dt = param.dtype
    return [new_p.to(dt), m.to(dt), v.to(dt), torch.full([1], t, dtype=INT64)]
"""
