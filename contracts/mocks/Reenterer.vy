# pragma version ~=0.4.3
"""
@title Reentrancy attacker (test only)
@custom:contract-name Reenterer
@license MIT
@notice A marketplace participant (client, provider or challenger) whose
        token callback re-enters the marketplace. The operator arms one
        re-entrant call and one read-only probe; the first callback fires them
        and records the outcome, so a test can assert that the re-entry was
        refused and what state the marketplace had already written before it
        handed over control.
"""

MAX_CALLDATA: constant(uint256) = 4096
MAX_RETURN: constant(uint256) = 1024


operator: public(address)

# The armed attack: fired once by the next token callback.
armed: public(bool)
_target: address
_calldata: Bytes[MAX_CALLDATA]
_probe_target: address
_probe_calldata: Bytes[MAX_CALLDATA]

# What the last fired attack saw.
callbacks: public(uint256)
reentry_succeeded: public(bool)
reentry_returndata: public(Bytes[MAX_RETURN])
probe_returndata: public(Bytes[MAX_RETURN])


@deploy
def __init__():
    self.operator = msg.sender


@external
def execute(target: address, data: Bytes[MAX_CALLDATA]) -> Bytes[MAX_RETURN]:
    """
    @notice Act as this account (deposit, post, stake, withdraw...); reverts bubble up.
    @param target Contract to call.
    @param data ABI-encoded call.
    """
    assert msg.sender == self.operator, "reenterer: not operator"
    return raw_call(target, data, max_outsize=MAX_RETURN)


@external
def arm(target: address, data: Bytes[MAX_CALLDATA], probe_target: address, probe_data: Bytes[MAX_CALLDATA]):
    """
    @notice Set the call to make from inside the next token callback, and a
            static probe to read state at that moment.
    """
    assert msg.sender == self.operator, "reenterer: not operator"
    self.armed = True
    self._target = target
    self._calldata = data
    self._probe_target = probe_target
    self._probe_calldata = probe_data


@external
def on_token_transfer(sender: address, receiver: address, amount: uint256):
    """
    @notice Token callback: fire the armed re-entry once, swallowing its
            revert so that the outer call can finish and be inspected.
    """
    self.callbacks += 1
    if not self.armed:
        return
    self.armed = False
    ok: bool = False
    ret: Bytes[MAX_RETURN] = b""
    ok, ret = raw_call(self._target, self._calldata, max_outsize=MAX_RETURN, revert_on_failure=False)
    self.reentry_succeeded = ok
    self.reentry_returndata = ret
    self.probe_returndata = raw_call(self._probe_target, self._probe_calldata, max_outsize=MAX_RETURN, is_static_call=True)
