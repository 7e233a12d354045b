#!/usr/bin/env node
// Makes the npm `solc` package (solcjs, WebAssembly) answer like a native solc
// binary for the two calls py-solc-x's compile_standard makes:
//   --version                       -> "solc, the solidity compiler ...\nVersion: X"
//   --standard-json [--base-path P] [--allow-paths A,B]  (JSON on stdin -> JSON on stdout)
// solcjs's own CLI prints a ">>> Cannot retry compilation with SMT" line before the
// JSON, which breaks parsers; here stdout carries the JSON and nothing else.
// Imports resolve under --base-path, then each --include-path / --allow-paths
// entry, then node_modules (so "@openzeppelin/contracts/..." works).
"use strict";
const fs = require("fs");
const path = require("path");

function argValue(args, name) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : null;
}

function loadSolc(nodeModules) {
  const candidates = [];
  if (nodeModules) candidates.push(path.join(nodeModules, "solc"));
  candidates.push("solc");
  for (const c of candidates) {
    try {
      return require(c);
    } catch (e) {
      if (e.code !== "MODULE_NOT_FOUND") throw e;
    }
  }
  process.stderr.write(
    "solc_shim: the npm package 'solc' is not installed; run `npm ci` in the project root\n"
  );
  process.exit(3);
}

const args = process.argv.slice(2);
const nodeModules = argValue(args, "--node-modules") || process.env.BDFL_NODE_MODULES;
const solc = loadSolc(nodeModules);

if (args.includes("--version")) {
  process.stdout.write("solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n");
  process.exit(0);
}

if (!args.includes("--standard-json")) {
  process.stderr.write("solc_shim: only --version and --standard-json are supported\n");
  process.exit(2);
}

const roots = [];
const basePath = argValue(args, "--base-path");
if (basePath) roots.push(basePath);
for (const flag of ["--include-path", "--allow-paths"]) {
  const v = argValue(args, flag);
  if (v) roots.push(...v.split(","));
}
if (nodeModules) roots.push(nodeModules);
roots.push(process.cwd());

function findImports(importPath) {
  for (const root of roots) {
    const full = path.resolve(root, importPath);
    try {
      return { contents: fs.readFileSync(full, "utf8") };
    } catch (e) {
      // try the next root
    }
  }
  return { error: "File not found: " + importPath + " (searched " + roots.join(", ") + ")" };
}

const input = fs.readFileSync(0, "utf8");
const output = solc.compile(input, { import: findImports });
process.stdout.write(output);
