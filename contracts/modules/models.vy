# pragma version ~=0.4.3
"""
@title Model registry
@custom:contract-name models
@license MIT
@notice The owner registers the models the marketplace serves. A model_id
        (bytes32) commits to the weights, quantisation parameters, tokenizer
        and output format (the engine computes it). Each model gets a dense
        index < MAX_MODELS so that a provider's served models fit in one
        bitmap word, and jobs store the 8-bit index instead of the id.
"""

from snekmate.auth import ownable
from . import params

uses: ownable
initializes: params


MAX_MODELS: constant(uint256) = 256
_MASK16: constant(uint256) = 2**16 - 1


struct Model:
    model_id: bytes32
    name: String[64]
    weights_digest: bytes32
    format_version: uint16
    active: bool
    index: uint256


# model_id -> (index + 1) | (active << 16); zero means unknown.
_ref: HashMap[bytes32, uint256]
_models: HashMap[uint256, Model]
model_count: public(uint256)


event ModelRegistered:
    model_id: indexed(bytes32)
    index: uint256
    name: String[64]
    weights_digest: bytes32
    format_version: uint16

event ModelStatusChanged:
    model_id: indexed(bytes32)
    active: bool


@deploy
def __init__(treasury: address):
    params.__init__(treasury)


@external
def register_model(model_id: bytes32, name: String[64], weights_digest: bytes32, format_version: uint16):
    """
    @notice Register a model; it is active at once.
    @param model_id The engine's model id (non-zero).
    @param name Human-readable name.
    @param weights_digest Digest of the model weights.
    @param format_version Version of the engine's result byte format.
    """
    ownable._check_owner()
    if model_id == empty(bytes32):
        params._fail("models: zero id")
    if self._ref[model_id] != 0:
        params._fail("models: already registered")
    index: uint256 = self.model_count
    if index >= MAX_MODELS:
        params._fail("models: registry full")
    self.model_count = index + 1
    self._ref[model_id] = (index + 1) | (1 << 16)
    self._models[index] = Model(
        model_id=model_id, name=name, weights_digest=weights_digest, format_version=format_version, active=True, index=index
    )
    log ModelRegistered(model_id=model_id, index=index, name=name, weights_digest=weights_digest, format_version=format_version)


@external
def set_model_active(model_id: bytes32, active: bool):
    """
    @notice Activate or deactivate a model. Inactive models take no new jobs;
            jobs already posted still run and settle.
    @param model_id A registered model id.
    @param active New status.
    """
    ownable._check_owner()
    ref: uint256 = self._ref[model_id]
    if ref == 0:
        params._fail("models: unknown model")
    index: uint256 = (ref & _MASK16) - 1
    self._ref[model_id] = (index + 1) | (convert(active, uint256) << 16)
    self._models[index].active = active
    log ModelStatusChanged(model_id=model_id, active=active)


@external
@view
def model_info(model_id: bytes32) -> Model:
    """
    @notice Metadata of a registered model (reverts for unknown ids).
    @param model_id The model id.
    """
    return self._models[self._index(model_id)]


@external
@view
def model_at(index: uint256) -> Model:
    """
    @notice Metadata of the model with dense index `index` (< model_count).
    @param index Registry index.
    """
    if index >= self.model_count:
        params._fail("models: unknown model")
    return self._models[index]


@internal
@view
def _index(model_id: bytes32) -> uint256:
    ref: uint256 = self._ref[model_id]
    if ref == 0:
        params._fail("models: unknown model")
    return (ref & _MASK16) - 1


@internal
@view
def _active_index(model_id: bytes32) -> uint256:
    ref: uint256 = self._ref[model_id]
    if ref == 0:
        params._fail("models: unknown model")
    if ref >> 16 == 0:
        params._fail("models: inactive")
    return (ref & _MASK16) - 1


@internal
@view
def _id_at(index: uint256) -> bytes32:
    return self._models[index].model_id
