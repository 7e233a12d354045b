// Hardhat 2 configuration for BDFL.
//
// * `npx hardhat compile` works offline: the solc-build subtask is pointed at the npm
//   `solc` package (solcjs) instead of downloading a native compiler.
// * `npx hardhat node` serves the devnet (bdfl's launcher passes --hostname 127.0.0.1).
// Compiler settings are shared with bdfl/chain/compiler.py through contracts/solc-settings.json.
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");
const settings = require("./contracts/solc-settings.json");

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args, hre, runSuper) => {
  if (args.solcVersion !== settings.version) {
    return runSuper();
  }
  const solcPackage = require("solc/package.json");
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: args.solcVersion,
    longVersion: solcPackage.version,
  };
});

const accounts = Number(process.env.BDFL_HARDHAT_ACCOUNTS || 20);
const blockTimeMs = Number(process.env.BDFL_HARDHAT_BLOCK_TIME_MS || 0);

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    version: settings.version,
    settings: {
      evmVersion: settings.evmVersion,
      optimizer: settings.optimizer,
      viaIR: settings.viaIR,
    },
  },
  paths: {
    sources: "./contracts",
    artifacts: "./artifacts",
    cache: "./cache",
  },
  networks: {
    hardhat: {
      chainId: 31337,
      blockGasLimit: 30_000_000,
      accounts: { count: accounts },
      mining: blockTimeMs > 0 ? { auto: false, interval: blockTimeMs } : { auto: true },
    },
  },
};
