# pragma version ~=0.4.3
"""
@title ERC-20 with transfer hooks (test only)
@custom:contract-name HookToken
@license MIT
@notice snekmate's ERC-20 plus ERC-777-style hooks: an account that opts in
        (`set_hook`) is called back as the sender *before* its tokens move and
        as the recipient *after* they arrive. This hands control to the account
        in the middle of the marketplace's `transfer` / `transferFrom`, which is
        exactly the window a reentrancy attack needs. Never deploy outside tests.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc20


interface ITokenHook:
    def on_token_transfer(sender: address, receiver: address, amount: uint256): nonpayable


initializes: ownable
initializes: erc20[ownable := ownable]

# transfer and transferFrom are redefined below with the hooks.
exports: (
    erc20.balanceOf,
    erc20.allowance,
    erc20.totalSupply,
    erc20.approve,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
)


# Accounts that asked to be called back on their transfers (ERC-1820 style opt-in).
hooked: public(HashMap[address, bool])


@deploy
def __init__(name: String[25], symbol: String[5]):
    ownable.__init__()
    erc20.__init__(name, symbol, 18, name, "1")


@external
def set_hook(enabled: bool):
    """
    @notice Opt in (or out) of the transfer callbacks for msg.sender.
    @param enabled True to be called back.
    """
    self.hooked[msg.sender] = enabled


@external
def mint(owner: address, amount: uint256):
    """
    @notice Open faucet (test token).
    @param owner Recipient.
    @param amount Token amount.
    """
    erc20._mint(owner, amount)


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transfer with the sender / recipient callbacks.
    """
    self._move(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transferFrom with the sender / recipient callbacks.
    """
    erc20._spend_allowance(owner, msg.sender, amount)
    self._move(owner, to, amount)
    return True


@internal
def _move(owner: address, to: address, amount: uint256):
    if self.hooked[owner]:
        extcall ITokenHook(owner).on_token_transfer(owner, to, amount)
    erc20._transfer(owner, to, amount)
    if self.hooked[to]:
        extcall ITokenHook(to).on_token_transfer(owner, to, amount)
