"""Every error spirtd raises on purpose, in one tree.

    SpirtError
    ├── ConfigError            a setting or argument is invalid; nothing was started
    ├── SecurityError          a certificate or revocation list is not trustworthy
    ├── AggregationError       an aggregation rule cannot run on these inputs
    │                          (unknown rule, bad option, too few inputs for f,
    │                          mismatched shapes, non-finite values)
    ├── TransportError         a message to a peer could not be delivered or
    │                          answered (unreachable, refused, broken link)
    ├── MembershipError        the membership layer refused a request (a probe
    │                          for another member, a closed driver, no seed answered)
    └── StoreError             the tensor store refused or failed an operation
        ├── TensorNotFound     the key holds no tensor
        ├── WrongType          the key holds something that is not a tensor
        ├── InvalidTensor      data, shape or dtype are wrong for the operation
        ├── ConflictError      a key changed while the operation ran; nothing was written
        ├── BackendUnsupported this backend cannot do the operation
        └── StoreUnavailable   the store cannot be reached, or it died

Messages say what was wrong in words a person can act on. Code that catches
errors catches these classes, never bare Exception, so that cancellation and
programming errors pass through.
"""


class SpirtError(Exception):
    """Base of every error spirtd raises on purpose."""


class ConfigError(SpirtError):
    """A setting or argument is invalid; nothing was started or changed."""


class SecurityError(SpirtError):
    """A certificate or revocation list is not trustworthy (wrong CA, bad
    signature, expired, revoked, malformed)."""


class AggregationError(SpirtError):
    """An aggregation rule cannot run on these inputs; nothing was written."""


class TransportError(SpirtError):
    """A message to a peer could not be delivered or answered: the peer is
    unreachable, refused the call, or the link broke. Timeouts are not
    TransportErrors: callers apply them as scopes and see TimeoutError."""


class MembershipError(SpirtError):
    """The membership layer refused a request: a probe meant for another
    member, a driver that is closed, a join that no seed answered."""


class StoreError(SpirtError):
    """The tensor store refused or failed an operation."""


class TensorNotFound(StoreError):
    """The key holds no tensor."""


class WrongType(StoreError):
    """The key holds a value that is not a tensor."""


class InvalidTensor(StoreError):
    """Data, shape or dtype are wrong for the operation; nothing was written."""


class ConflictError(StoreError):
    """A key changed while the operation ran; nothing was written."""


class BackendUnsupported(StoreError):
    """This store backend cannot do the operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached, or it died."""
