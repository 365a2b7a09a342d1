# Shared by scripts/run and scripts/test: installs the Debian packages that are missing
# (and only those), and configures + builds one build folder. Sourced, not run.

KETCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# What building needs: the toolchain and every library of cmake/KetchDeps.cmake.
KETCH_BUILD_PACKAGES=(
    gcc libc6-dev make cmake pkg-config git
    libuv1-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev liblmdb-dev
    libcurl4-openssl-dev libcjson-dev check libhttp-parser-dev libsystemd-dev
)
# What the tests need on top: Debian's interpreter and clients, real etcd to compare with.
KETCH_TEST_PACKAGES=(
    python3 python3-pytest python3-etcd etcd-client etcd-server curl procps iproute2
)

ketch_log() {
    printf 'ketch: %s\n' "$*" >&2
}

# ketch_install_missing PACKAGE...: apt-get install of those not yet installed.
ketch_install_missing() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        ketch_log "missing Debian packages: ${missing[*]} (run this as root, or install them)"
        return 1
    fi
    ketch_log "installing ${missing[*]}"
    # Packages such as etcd-server would start their service (and take etcd's ports) on a
    # machine running systemd; a temporary policy-rc.d keeps services stopped during install.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
    fi
    local rc=0
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
    [ "$added_policy" -eq 1 ] && rm -f "$policy"
    if [ "$rc" -ne 0 ]; then
        ketch_log "apt-get install failed (exit $rc)"
        return "$rc"
    fi
}

# ketch_build DIR CMAKE_ARGS...: configures DIR once, then builds everything in it.
ketch_build() {
    local dir="$1"
    shift
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        cmake -S "$KETCH_ROOT" -B "$dir" "$@" >/dev/null || return 1
    fi
    cmake --build "$dir" --parallel "$(nproc)" -- --no-print-directory >"$dir/build.log" 2>&1 || {
        cat "$dir/build.log" >&2
        ketch_log "build failed in $dir (log above)"
        return 1
    }
}
