# pragma version ~=0.4.3
# pragma experimental-codegen
# pragma optimize codesize
"""
@title Verinfer marketplace
@custom:contract-name Marketplace
@license MIT
@notice One deployment composing the marketplace modules: parameters, model
        registry, accounting (internal balances), staking, jobs and settlement.
        One contract means no cross-contract calls between the parts and one
        reentrancy lock around every value-moving entry point.
        The modules initialize each other in a chain (settlement -> jobs ->
        payouts -> staking -> accounting, sortition, models -> params -> ownable, ownable_2step) so that each one
        also compiles on its own. The interface reference is contracts/README.md.
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.auth import ownable_2step
from .modules import accounting
from .modules import jobs
from .modules import models
from .modules import params
from .modules import payouts
from .modules import settlement
from .modules import sortition
from .modules import staking

uses: (ownable, ownable_2step, params, models, accounting, sortition, staking, payouts, jobs)
initializes: settlement[accounting := accounting, params := params, payouts := payouts, staking := staking]

# Ownership moves in two steps (transfer_ownership, then accept_ownership by the
# new owner); renounce_ownership deliberately is not exported: an ownerless
# marketplace could never register a new model.
exports: (
    ownable.owner,
    ownable_2step.pending_owner,
    ownable_2step.transfer_ownership,
    ownable_2step.accept_ownership,
    params.__interface__,
    models.__interface__,
    accounting.__interface__,
    staking.__interface__,
    sortition.__interface__,
    payouts.__interface__,
    jobs.__interface__,
    settlement.__interface__,
)


@deploy
def __init__(pay_token: IERC20, stake_token: IERC20, treasury: address):
    """
    @param pay_token ERC-20 clients pay in.
    @param stake_token ERC-20 providers stake (may equal pay_token).
    @param treasury Receives protocol fees and the treasury share of slashes.
    """
    settlement.__init__(pay_token, stake_token, treasury)
