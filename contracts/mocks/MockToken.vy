# pragma version ~=0.4.3
"""
@title ERC-20 mock for failure-path tests
@custom:contract-name MockToken
@license MIT
@notice snekmate's ERC-20 with an open mint, whose transfer and transferFrom
        can be switched to return False instead of moving tokens (a token that
        signals failure without reverting). Tests only.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

exports: (
    erc20.approve,
    erc20.balanceOf,
    erc20.allowance,
    erc20.totalSupply,
    erc20.decimals,
)

failing: public(bool)


@deploy
def __init__():
    ownable.__init__()
    erc20.__init__("Mock", "MOCK", 18, "Mock", "1")


@external
def mint(owner: address, amount: uint256):
    """
    @notice Mint `amount` to `owner` (anyone).
    """
    erc20._mint(owner, amount)


@external
def set_failing(failing_: bool):
    """
    @notice When True, transfer and transferFrom return False and move nothing.
    """
    self.failing = failing_


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transfer, or False while failing.
    """
    if self.failing:
        return False
    erc20._transfer(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transferFrom, or False while failing.
    """
    if self.failing:
        return False
    erc20._spend_allowance(owner, msg.sender, amount)
    erc20._transfer(owner, to, amount)
    return True
