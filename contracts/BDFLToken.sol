// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title BDFL stake and reward token
/// @notice Plain OpenZeppelin ERC-20. Peers stake it to join; the PeerRegistry (the only
///         holder of MINTER_ROLE after deployment) mints rewards into itself and burns
///         slashed stake, so the registry's balance always covers what it owes.
///         The total supply never exceeds `cap()` (OpenZeppelin ERC20Capped): `deploy.py` sets
///         it to `initialSupply` plus the RoundManager's lifetime minting cap, which the
///         RoundManager enforces itself (per round and in total) so a mint never hits this cap.
/// @dev The deployer receives `initialSupply` (used to fund simulated peers) and the
///      admin role; `deploy.py` grants MINTER_ROLE to the registry and then renounces the
///      admin role, so nobody can mint except through the protocol rules.
contract BDFLToken is ERC20, ERC20Burnable, ERC20Capped, AccessControl {
    /// @notice Role allowed to mint new tokens (the PeerRegistry).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param admin Receives DEFAULT_ADMIN_ROLE (grants MINTER_ROLE).
    /// @param initialHolder Receives `initialSupply`.
    /// @param initialSupply Tokens minted at deployment (may be 0).
    /// @param supplyCap Most tokens that may ever exist at once (>= initialSupply, > 0).
    constructor(address admin, address initialHolder, uint256 initialSupply, uint256 supplyCap)
        ERC20("BDFL Stake Token", "BDFL")
        ERC20Capped(supplyCap)
    {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (initialSupply != 0) _mint(initialHolder, initialSupply);
    }

    /// @notice Mint `amount` tokens to `to`. Emits {Transfer} from the zero address.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @dev ERC20Capped's supply check on every mint.
    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Capped) {
        super._update(from, to, value);
    }
}
