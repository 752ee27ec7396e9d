# pragma version ~=0.4.3
"""
@title Test token for local networks
@custom:contract-name TestToken
@license MIT
@notice snekmate's ERC-20 with an open faucet: anyone may mint to anyone.
        Deployed only on local networks (scripts/deploy.py); never use it on a
        public chain.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

exports: (
    erc20.IERC20,
    erc20.IERC20Detailed,
    erc20.permit,
    erc20.nonces,
    erc20.DOMAIN_SEPARATOR,
    erc20.eip712Domain,
    erc20.burn,
    erc20.burn_from,
)


@deploy
def __init__(name: String[25], symbol: String[5]):
    ownable.__init__()
    erc20.__init__(name, symbol, 18, name, "1")


@external
def mint(owner: address, amount: uint256):
    """
    @notice Faucet: mint `amount` tokens to `owner`. Open to anyone (local test token).
    @param owner Recipient.
    @param amount Token amount.
    """
    erc20._mint(owner, amount)
