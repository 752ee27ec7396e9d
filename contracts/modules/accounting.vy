# pragma version ~=0.4.3
"""
@title Internal balances and token movements
@custom:contract-name accounting
@license MIT
@notice Pull payments. Everything owed to an account (provider pay, client
        refunds, slash compensation, treasury fees, returned bonds) is credited
        to an internal balance, and one `withdraw` collects it all. Clients may
        also deposit ahead so that posting needs no token transfer.
        Two ledgers because payment and stake may be different ERC-20s:
        `balances` in the payment token, `stake_credits` in the stake token
        (slash shares). All token calls live in this module; every caller
        writes its state before calling them. `withdraw` lives in payouts.vy:
        it first releases matured single-provider pay.
"""

from ethereum.ercs import IERC20


PAY_TOKEN: public(immutable(IERC20))
STAKE_TOKEN: public(immutable(IERC20))

# Payment-token balance per account: spendable for posts and bonds, withdrawable.
balances: public(HashMap[address, uint256])
# Stake-token balance per account from slash shares: withdrawable.
stake_credits: public(HashMap[address, uint256])


event Deposited:
    account: indexed(address)
    amount: uint256

event Withdrawn:
    account: indexed(address)
    pay_amount: uint256
    stake_amount: uint256


@deploy
def __init__(pay_token: IERC20, stake_token: IERC20):
    assert pay_token.address != empty(address) and stake_token.address != empty(address), "accounting: zero token"
    PAY_TOKEN = pay_token
    STAKE_TOKEN = stake_token


@external
@nonreentrant
def deposit(amount: uint256):
    """
    @notice Move payment tokens into your internal balance (approve first).
    @param amount Token amount, > 0.
    """
    assert amount > 0, "accounting: zero amount"
    self.balances[msg.sender] += amount
    self._pull(PAY_TOKEN, msg.sender, amount)
    log Deposited(account=msg.sender, amount=amount)


@internal
def _collect(payer: address, amount: uint256):
    """
    @dev Charge `amount` of payment token: the internal balance first, then
         `transferFrom` for the shortfall. Callers are non-reentrant and have
         written their own state already.
    """
    balance: uint256 = self.balances[payer]
    if balance >= amount:
        self.balances[payer] = balance - amount
        return
    self.balances[payer] = 0
    self._pull(PAY_TOKEN, payer, amount - balance)


@internal
def _pull(token: IERC20, owner: address, amount: uint256):
    assert extcall token.transferFrom(owner, self, amount, default_return_value=True), "accounting: transfer failed"


@internal
def _push(token: IERC20, to: address, amount: uint256):
    assert extcall token.transfer(to, amount, default_return_value=True), "accounting: transfer failed"
