# The meshd image: the compiled CLI on Node 22, with the production
# dependencies only, run as the unprivileged user `node`.
#
#   docker build -t meshd .
#   docker run --rm meshd --version
#   docker compose up --build          # the mesh of docker-compose.yml
#
# docs/deploy.md describes the image, the compose file, the volume and the
# health check.

ARG NODE_IMAGE=node:22-bookworm-slim

# 1. build: the whole dependency tree (TypeScript among it), then dist/.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build now, before the sources are copied;
# the build runs below instead.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.js scripts/build.js
COPY lib lib
COPY bin bin
RUN node scripts/build.js

# 2. deps: the production tree only (no TypeScript, tsx or esbuild).
FROM ${NODE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# 3. the image: package.json (it makes dist/ ES modules), the production tree,
# dist/ and the health check. Everything is owned by root and read-only to
# the user `node`, which owns only /var/lib/meshd (keys, registry).
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json LICENSE ./
COPY --from=deps /src/node_modules node_modules
COPY --from=build /src/dist/lib dist/lib
COPY --from=build /src/dist/bin dist/bin
COPY docker/healthcheck.mjs docker/healthcheck.mjs
# `meshd` on the PATH for shell commands (its shebang runs Node with the same
# flag as the ENTRYPOINT).
RUN ln -s /app/dist/bin/meshd.js /usr/local/bin/meshd \
 && mkdir -p /var/lib/meshd \
 && chown node:node /var/lib/meshd
USER node
WORKDIR /var/lib/meshd
# 4222: the mesh port brokers listen on; 9090: the admin endpoint (--admin).
EXPOSE 4222 9090
# A broker's admin endpoint: GET /healthz must answer 200 (docs/deploy.md#health-checks).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "/app/docker/healthcheck.mjs"]
ENTRYPOINT ["node", "--initial-old-space-size=128", "/app/dist/bin/meshd.js"]
CMD ["--help"]
