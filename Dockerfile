# The project's worker and CLI as an image (docker-compose.yml runs it). It is built by the steps
# CI runs, in the same order: npm ci, npm run build, npm run setup. The Temporal server comes from
# the compose file, so setup runs with TEMPORAL_ADDRESS set, which makes it skip the embedded
# Temporal CLI; it still builds tfjs-node (from registries where Google's host is unreachable;
# without it training falls back to WebAssembly) and the native training kernel (the image has a C
# compiler, so a failed kernel build fails the image build rather than being skipped in silence).
#
#   docker build -t durable-sweeps .    (--build-arg SWEEPS_SKIP_TFJS_NODE=1 skips setup's offline build
#                                        of tfjs-node from PyPI's TensorFlow wheel; where npm ci could
#                                        fetch tfjs-node's own binaries, the image has it anyway)

# Node 24, a current LTS that package.json's engines lists and CI runs (unit tests and an end-to-end
# sweep, .ci/run); the full image has the compilers setup needs.
FROM node:24-bookworm AS build
# scripts/tfjs-node/setup.sh downloads TensorFlow's wheel with pip and patches it with patchelf.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-pip patchelf \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build
ARG SWEEPS_SKIP_TFJS_NODE=
RUN TEMPORAL_ADDRESS=temporal:7233 npm run setup
# The runtime needs no compiler, bundler or test tool: dev dependencies go before the copy below.
# --ignore-scripts: nothing is reinstalled, so the tfjs-node that setup built stays.
RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# The runtime: the built project (with its prebuilt workflow bundle) without compilers or dev
# dependencies. The native kernel built above is used only on a machine with the build machine's
# CPU (ml/kernel/load.ts checks); elsewhere the committed WebAssembly kernel runs.
FROM node:24-bookworm-slim
ENV TF_CPP_MIN_LOG_LEVEL=2 SWEEPS_HOME=/sweeps SWEEPS_ARTIFACTS=/artifacts
COPY --from=build /app /app
WORKDIR /app
# An empty named volume mounted on /artifacts takes this folder's owner, so workers can write.
RUN mkdir -p /sweeps/data /artifacts && chown node:node /sweeps /artifacts
USER node
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["worker"]
