# syntax=docker/dockerfile:1
# Build stage: compiles TypeScript and the native addons (better-sqlite3, argon2).
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ormconfig.ts ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Runtime stage: only the built service and production dependencies, as a non-root user.
FROM node:24-bookworm-slim
# NODE_OPTIONS caps the V8 heap for a 512 MiB container (measured peaks: docs/benchmarks.md);
# set it per deployment to fit another memory limit.
ENV NODE_ENV=production \
    APP_ENV=production \
    PORT=3000 \
    NODE_OPTIONS=--max-old-space-size=256
WORKDIR /app
COPY --from=build --chown=node:node /app/package.json ./package.json
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/api/v1/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Migrations are an explicit step: docker compose run --rm migrate (npm run migration:run).
# A larger young generation: a busy instance allocates fast and short-lived, and scavenges of a
# small one took a tenth of its CPU (see npm run bench).
CMD ["node", "--max-semi-space-size=32", "dist/src/main.js"]
