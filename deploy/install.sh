#!/bin/sh
# Install edge-agent as a systemd service: the edge-agent user, its directories, the unit.
# Safe to run again (after an upgrade, say): it changes only what differs.
#
#   sudo deploy/install.sh [--bin PATH] [--now] [--dry-run]
#
#   --bin PATH   the factory venv's console script (default: `command -v edge-agent`, else
#                /opt/edge-agent/venv/bin/edge-agent); the unit runs the python beside it:
#                ExecStartPre its update repair, ExecStart its launcher (docs/updates.md)
#   --now        also start (or restart) the service; needs /etc/edge-agent/config.yaml
#   --dry-run    print what would be done, change nothing (no root needed)
#   --print-unit print the unit as it would be installed, and exit
#   --page-edits let the technician's page save zones: /etc/edge-agent becomes the
#                agent's and writable to it (a drop-in); off by default, /etc stays
#                read-only to the agent (docs/web.md, Under systemd)
#
# docs/service.md says what each step is for.
set -eu

NAME=edge-agent
HERE=$(cd "$(dirname "$0")" && pwd)
UNIT_SRC="$HERE/systemd/$NAME.service"
UNIT_DIR=${EDGE_AGENT_UNIT_DIR:-/etc/systemd/system}
UNIT_DST="$UNIT_DIR/$NAME.service"
DROPIN_DIR="$UNIT_DIR/$NAME.service.d"
CONF_DIR=/etc/$NAME
STATE_DIR=/var/lib/$NAME
DEFAULT_BIN=/opt/$NAME/venv/bin/$NAME
LINK="${EDGE_AGENT_LINK_DIR:-/usr/local/bin}/$NAME"

BIN=""
NOW=0
DRY=0
PRINT_UNIT=0
PAGE_EDITS=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) [ $# -ge 2 ] || { echo "install.sh: --bin needs a path" >&2; exit 2; }
               BIN=$2; shift ;;
        --bin=*) BIN=${1#--bin=} ;;
        --now) NOW=1 ;;
        --dry-run) DRY=1 ;;
        --print-unit) PRINT_UNIT=1 ;;
        --page-edits) PAGE_EDITS=1 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ -z "$BIN" ]; then
    BIN=$(command -v "$NAME" 2>/dev/null || true)
    [ -n "$BIN" ] || BIN=$DEFAULT_BIN
fi
case "$BIN" in
    /*) ;;
    *) BIN="$(pwd)/$BIN" ;;
esac
# The link step 4 makes (/usr/local/bin/edge-agent) when found on the PATH: its venv's.
if [ -L "$BIN" ]; then BIN=$(readlink -f "$BIN"); fi

# The factory venv's interpreter: the unit's prestart and launcher run from it, and agent
# releases are venvs over it (docs/updates.md, The agent itself).
PY="$(dirname "$BIN")/python"
render_unit() {
    sed "s#/opt/edge-agent/venv/bin/python #$PY #" "$UNIT_SRC"
}

if [ "$PRINT_UNIT" = 1 ]; then
    render_unit
    exit 0
fi

say() { printf '%s\n' "$*"; }
# Every change goes through `run`: printed with --dry-run, run otherwise.
run() {
    if [ "$DRY" = 1 ]; then
        say "would run: $*"
    else
        say "+ $*"
        "$@"
    fi
}

if [ "$DRY" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo), or with --dry-run to see what it would do" >&2
    exit 1
fi
[ -f "$UNIT_SRC" ] || { echo "install.sh: $UNIT_SRC is missing" >&2; exit 1; }
if [ ! -x "$BIN" ] || [ ! -x "$PY" ]; then
    if [ "$DRY" = 1 ]; then
        say "warning: $BIN or $PY is not an executable yet (install the wheel first, or pass --bin)"
    else
        echo "install.sh: $BIN or $PY is not executable: install the wheel first, or pass --bin PATH" >&2
        exit 1
    fi
elif ! "$PY" -I -c "import edge_agent.update.launcher, edge_agent.update.prestart" 2>/dev/null; then
    echo "install.sh: $PY has no edge_agent.update.launcher: install this version's wheel" >&2
    [ "$DRY" = 1 ] || exit 1
elif ! "$PY" -I -m pip --version >/dev/null 2>&1; then
    say "warning: $PY has no pip: the agent's own updates (agent releases) need it (pip >= 22.3)"
fi

# 1. The service user: a system account with no login and no home of its own.
if getent passwd "$NAME" >/dev/null 2>&1; then
    say "user $NAME exists"
else
    run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "edge-agent service" "$NAME"
fi

# 2. Device groups: video is in the unit (every Debian has it); gpio exists on Raspberry Pi
#    OS only, and a unit naming a group that does not exist fails to start, so it goes in
#    a drop-in only where it exists.
getent group video >/dev/null 2>&1 ||
    say "warning: no group video here: the unit's SupplementaryGroups=video will fail"
EXTRA_GROUPS=""
for group in gpio; do
    if getent group "$group" >/dev/null 2>&1; then
        EXTRA_GROUPS="$EXTRA_GROUPS $group"
    else
        say "group $group does not exist here: not used"
    fi
done
EXTRA_GROUPS=${EXTRA_GROUPS# }
# The user itself is in them too: the unit's SupplementaryGroups cover the service only, and
# the technician's `sudo -u edge-agent edge-agent selftest` (install.md) opens the cameras
# and the LED as that user (/dev/video*, /dev/gpiochip* are 0660 to their group).
for group in video $EXTRA_GROUPS; do
    getent group "$group" >/dev/null 2>&1 || continue
    case " $(id -nG "$NAME" 2>/dev/null) " in
        *" $group "*) ;;
        *) run usermod -a -G "$group" "$NAME" ;;
    esac
done

# 3. Directories: config root-owned, entered by the group only; state owner-only. The
#    config may hold a password, which the agent accepts only in an owner-only file: it is
#    the agent's, 0600 (the sandbox's read-only /etc keeps the agent from changing it).
if [ "$PAGE_EDITS" = 1 ]; then  # the page writes config.yaml(.prev) atomically in here
    run install -d -m 0700 -o "$NAME" -g "$NAME" "$CONF_DIR"
else
    run install -d -m 0750 -o root -g "$NAME" "$CONF_DIR"
fi
run install -d -m 0700 -o "$NAME" -g "$NAME" "$STATE_DIR"
if [ -f "$CONF_DIR/config.yaml" ]; then
    run chown "$NAME:$NAME" "$CONF_DIR/config.yaml"
    run chmod 0600 "$CONF_DIR/config.yaml"
else
    say "no $CONF_DIR/config.yaml yet: enrol the device (sudo $NAME enroll --token ..., docs/enrolment.md) or write one (examples/), then: $NAME check-config $CONF_DIR/config.yaml"
fi

# 4. The technician's commands (enroll, selftest, snapshot) on root's and sudo's PATH: the
#    venv's bin is on neither, so `sudo edge-agent enroll` would be "command not found".
if [ "$LINK" = "$BIN" ]; then
    :
elif [ -L "$LINK" ] && [ "$(readlink -f "$LINK")" = "$(readlink -f "$BIN")" ]; then
    say "$LINK is up to date"
elif [ -e "$LINK" ] && [ ! -L "$LINK" ]; then
    say "$LINK is another program: left alone (run $BIN by its path)"
else
    run ln -sfn "$BIN" "$LINK"
fi

# 5. The unit, and a drop-in with the device groups; written only when they differ.
install_file() {  # install_file DEST MODE < content
    tmp=$(mktemp)
    cat >"$tmp"
    if [ -f "$1" ] && cmp -s "$tmp" "$1"; then
        say "$1 is up to date"
        rm -f "$tmp"
        return 1
    fi
    if [ "$DRY" = 1 ]; then
        say "would write $1"
        rm -f "$tmp"
    else
        say "+ write $1"
        install -m "$2" "$tmp" "$1"
        rm -f "$tmp"
    fi
    return 0
}
CHANGED=0
render_unit | install_file "$UNIT_DST" 0644 && CHANGED=1
say "  ExecStartPre=$PY -I -m edge_agent.update.prestart"
say "  ExecStart=$PY -I -m edge_agent.update.launcher run"
if [ -n "$EXTRA_GROUPS" ]; then
    [ -d "$DROPIN_DIR" ] || run install -d -m 0755 "$DROPIN_DIR"
    printf '# written by deploy/install.sh: device groups this OS has\n[Service]\nSupplementaryGroups=%s\n' \
        "$EXTRA_GROUPS" | install_file "$DROPIN_DIR/10-groups.conf" 0644 && CHANGED=1
fi

if [ "$PAGE_EDITS" = 1 ]; then
    [ -d "$DROPIN_DIR" ] || run install -d -m 0755 "$DROPIN_DIR"
    printf '# written by deploy/install.sh --page-edits: the page may save the config\n[Service]\nReadWritePaths=%s\n' \
        "$CONF_DIR" | install_file "$DROPIN_DIR/20-page-edits.conf" 0644 && CHANGED=1
elif [ -f "$DROPIN_DIR/20-page-edits.conf" ]; then
    run rm -f "$DROPIN_DIR/20-page-edits.conf"
    CHANGED=1
fi

# 6. systemd: reload units if changed, enable at boot, start when asked.
[ "$CHANGED" = 1 ] && run systemctl daemon-reload
run systemctl enable "$NAME.service"
if [ "$NOW" = 1 ]; then
    run systemctl restart "$NAME.service"
else
    say "enabled; start it with: systemctl start $NAME (logs: journalctl -u $NAME -f)"
fi
