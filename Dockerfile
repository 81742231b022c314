# The project's worker (and CLI) as an image. The same scripts CI runs: npm install, npm run build.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production TF_CPP_MIN_LOG_LEVEL=2 SWEEPS_HOME=/data
COPY package.json package-lock.json ./
# With internet (as on Docker hosts), tfjs-node's own install script fetches its binary.
RUN npm install --no-audit --no-fund && npm rebuild @tensorflow/tfjs-node --foreground-scripts || true
COPY . .
RUN npm run build
VOLUME /data
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["worker"]
