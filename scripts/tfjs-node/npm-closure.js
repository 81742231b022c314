#!/usr/bin/env node
'use strict';
// Helper for setup.sh: installs @tensorflow/tfjs-node and the packages it needs
// exactly as the project's package-lock.json lays them out, without touching
// package.json, package-lock.json or any package that is already installed.
//
//   node npm-closure.js prepare <projectRoot> <stageDir> <package> <version>
//     Writes <stageDir>/package.json and <stageDir>/package-lock.json holding
//     only <package> and its dependency closure, copied from the project's
//     lock (same paths, versions and integrity hashes), so that `npm ci` in
//     <stageDir> reproduces that part of the project's node_modules tree.
//
//   node npm-closure.js install <projectRoot> <stageDir> <package> <trashDir>
//     Moves from <stageDir>/node_modules into <projectRoot>/node_modules every
//     package of the closure the project lacks, plus <package> itself (an old
//     copy is moved aside into <trashDir>), with rename(2) on one filesystem.
//
// Exit status 2 with a one-line reason on stderr when the lock cannot be used.

const fs = require('fs');
const path = require('path');

function die(msg) {
  process.stderr.write(`${msg}\n`);
  process.exit(2);
}

function readLock(root) {
  const file = path.join(root, 'package-lock.json');
  let lock;
  try {
    lock = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    die(`cannot read ${file}: ${e.message}`);
  }
  if (!lock.packages || (lock.lockfileVersion || 0) < 2) {
    die(`${file} has no "packages" section (lockfileVersion >= 2 needed)`);
  }
  return lock;
}

// Node's resolution over lock paths: from `from`, find node_modules/<name> in
// the nearest ancestor that has it.
function resolveIn(packages, from, name) {
  let base = from;
  for (;;) {
    const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (!base) return null;
    const i = base.lastIndexOf('/node_modules/');
    base = i < 0 ? '' : base.slice(0, i);
  }
}

function closure(lock, pkgName) {
  const P = lock.packages;
  const start = `node_modules/${pkgName}`;
  if (!P[start]) {
    die(`package-lock.json has no entry for ${pkgName} (add it to optionalDependencies and run npm install)`);
  }
  const seen = new Set();
  const queue = [start];
  while (queue.length) {
    const p = queue.pop();
    if (seen.has(p)) continue;
    seen.add(p);
    const e = P[p];
    const deps = { ...(e.dependencies || {}), ...(e.optionalDependencies || {}) };
    for (const d of Object.keys(deps)) {
      const r = resolveIn(P, p, d);
      if (r) queue.push(r);
      else if (!(e.optionalDependencies && d in e.optionalDependencies)) {
        die(`package-lock.json cannot resolve ${d} needed by ${p}`);
      }
    }
  }
  return [...seen].sort();
}

function prepare(root, stage, pkgName, version) {
  const lock = readLock(root);
  const entry = lock.packages[`node_modules/${pkgName}`];
  if (entry && entry.version !== version) {
    die(`package-lock.json pins ${pkgName}@${entry.version}, this setup is for ${version}`);
  }
  const paths = closure(lock, pkgName);
  const packages = {
    '': { name: 'tfjs-node-staging', version: '0.0.0', dependencies: { [pkgName]: version } },
  };
  for (const p of paths) {
    const e = { ...lock.packages[p] };
    // Everything here is a plain dependency of the staging root: a failed fetch
    // must fail `npm ci`, not be skipped silently as an optional package.
    for (const flag of ['dev', 'optional', 'devOptional', 'peer', 'extraneous']) delete e[flag];
    packages[p] = e;
  }
  fs.mkdirSync(stage, { recursive: true });
  fs.writeFileSync(
    path.join(stage, 'package.json'),
    JSON.stringify({ name: 'tfjs-node-staging', version: '0.0.0', private: true, dependencies: { [pkgName]: version } }, null, 2),
  );
  fs.writeFileSync(
    path.join(stage, 'package-lock.json'),
    JSON.stringify({ name: 'tfjs-node-staging', version: '0.0.0', lockfileVersion: 3, requires: true, packages }, null, 2),
  );
  process.stdout.write(`${paths.length}\n`);
}

function isInstalled(dir) {
  return fs.existsSync(path.join(dir, 'package.json'));
}

function install(root, stage, pkgName, trash) {
  const lock = readLock(root);
  const paths = closure(lock, pkgName);
  const self = `node_modules/${pkgName}`;
  const moved = [];
  for (const p of paths) {
    // A package nested below one moved already came along with it.
    if (moved.some((m) => p.startsWith(`${m}/`))) continue;
    const dest = path.join(root, p);
    if (p !== self && isInstalled(dest)) continue;
    const src = path.join(stage, p);
    if (!isInstalled(src)) die(`staging tree lacks ${p}`);
    if (fs.existsSync(dest)) {
      // An old or broken copy: keep it until the end (it goes with the temp dir).
      fs.mkdirSync(trash, { recursive: true });
      fs.renameSync(dest, path.join(trash, `${moved.length}-${path.basename(p)}`));
    }
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.renameSync(src, dest);
    moved.push(p);
  }
  // Link the bins of moved top-level packages the way npm does (skip existing).
  const binDir = path.join(root, 'node_modules', '.bin');
  for (const p of moved) {
    const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)$/.exec(p);
    const bin = lock.packages[p].bin;
    if (!m || !bin) continue;
    for (const [name, rel] of Object.entries(bin)) {
      const link = path.join(binDir, name);
      try {
        fs.lstatSync(link);
        continue;
      } catch {
        /* absent: create it */
      }
      fs.mkdirSync(binDir, { recursive: true });
      const target = path.join('..', m[1], rel);
      fs.symlinkSync(target, link);
      try {
        fs.chmodSync(path.join(binDir, target), 0o755);
      } catch {
        /* a bin pointing at a missing file is npm's problem, not ours */
      }
    }
  }
  process.stdout.write(`${moved.length}\n`);
}

const [cmd, root, stage, pkgName, extra] = process.argv.slice(2);
if (cmd === 'prepare' && extra) prepare(path.resolve(root), path.resolve(stage), pkgName, extra);
else if (cmd === 'install' && extra) install(path.resolve(root), path.resolve(stage), pkgName, path.resolve(extra));
else die('usage: npm-closure.js prepare <root> <stageDir> <package> <version> | install <root> <stageDir> <package> <trashDir>');
