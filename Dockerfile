# pushgate container image (README: "Operating pushgate" → "Container").
#   docker build -t pushgate .
#   docker run -d -p 127.0.0.1:5001:5001 -v pushgate-data:/var/lib/pushgate -e PUSHGATE_PUBLIC_URL=https://mfa.example.org pushgate
# Every setting comes from PUSHGATE_* variables or a config file mounted read-only (PUSHGATE_CONFIG).

# --- build: native drivers (better-sqlite3, argon2) and the TypeScript ---------------------------------------------
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# node-gyp compiles against the headers of the Node in this image (no download from nodejs.org).
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY bin ./bin
COPY core ./core
COPY server ./server
COPY tokens ./tokens
COPY policies ./policies
COPY cli ./cli
# npm ci builds the drivers and, through `prepare`, build/; then the dev dependencies go.
RUN npm ci && npm prune --omit=dev

# --- run -------------------------------------------------------------------------------------------------------------
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PUSHGATE_HOST=0.0.0.0 \
    PUSHGATE_PORT=5001 \
    PUSHGATE_DATABASE_URL=sqlite:/var/lib/pushgate/pushgate.db \
    PUSHGATE_KEY_FILE=/var/lib/pushgate/pushgate.key
WORKDIR /opt/pushgate
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/build ./build
COPY --from=build /src/bin ./bin
RUN ln -s /opt/pushgate/bin/pushgate.js /usr/local/bin/pushgate \
 && install -d -o node -g node -m 0700 /var/lib/pushgate
# The SQLite database and the secrets key (back the key up apart from the database: README "Backups").
VOLUME ["/var/lib/pushgate"]
USER node
EXPOSE 5001
# Liveness with a database round trip (node:20-bookworm-slim has no curl; Node's fetch does it).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PUSHGATE_PORT||5001)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The flags of `npm start` (README "Running in production"); `docker run IMAGE db migrate` runs another command.
ENTRYPOINT ["node", "--max-semi-space-size=8", "/opt/pushgate/bin/pushgate.js"]
CMD ["serve"]
