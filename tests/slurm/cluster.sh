#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, with accounting (sacct), for difflab's tests and for trying
# `hydra/launcher=submitit_slurm` on one machine. Debian/Ubuntu, run as root, works without systemd.
#
#   tests/slurm/cluster.sh start   install what is missing, start munge, MariaDB, slurmdbd, slurmctld,
#                                  slurmd; wait until the node is idle; write $DIR/env.sh
#   tests/slurm/cluster.sh stop    stop the daemons this script started (PID files), nothing else;
#                                  WIPE=1 also deletes job state and the accounting database
#   tests/slurm/cluster.sh status  sinfo + the daemons it started
#
# Then `. $DIR/env.sh` (exports SLURM_CONF) in the shell that runs `python -m src.run -m ...`.
# DIR defaults to /tmp/difflab-slurm (set DIFFLAB_SLURM_DIR). Partition: `debug`.
set -euo pipefail

DIR=${DIFFLAB_SLURM_DIR:-/tmp/difflab-slurm}
ETC=$DIR/etc RUN=$DIR/run LOG=$DIR/log STATE=$DIR/state DB=$DIR/mysql
export SLURM_CONF=$ETC/slurm.conf
STARTED=$RUN/started

log() { echo "[slurm] $*"; }
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
remember() { grep -qx "$1" "$STARTED" 2>/dev/null || echo "$1" >> "$STARTED"; }
wait_for() { # tries command...
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

install_packages() {
  local missing=""
  for p in slurm-wlm munge slurmdbd mariadb-server; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -z "$missing" ] && return 0
  [ "$(id -u)" = 0 ] || { echo "error: need root to install:$missing" >&2; exit 1; }
  log "installing:$missing"
  apt-get update -qq >"$LOG/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >>"$LOG/apt.log" 2>&1 \
    || { echo "error: apt-get install failed, see $LOG/apt.log" >&2; exit 1; }
}

write_configs() {
  local node hw mem
  node=$(hostname -s)
  # the real topology (CPUs, sockets, cores, threads) without RealMemory; leave 15% of RAM to the OS
  hw=$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]* //' -e 's/ *RealMemory=[0-9]*//')
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)
  cat > "$ETC/slurm.conf" <<CONF
ClusterName=difflab
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job restarts after cred_expire seconds (default 120)
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
# no cgroups in containers: plain process tracking, no task or accounting-gather plugins
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=5,sched_interval=5
MpiDefault=none
ReturnToService=2
KillWait=5
MailProg=/bin/true
# jobs without --mem get 1 GB per CPU instead of the whole node (which would serialise them)
DefMemPerCPU=1024
# reject impossible requests at submission instead of leaving them pending forever
EnforcePartLimits=ALL
NodeName=$node NodeAddr=127.0.0.1 $hw RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
  # slurmdbd reads slurmdbd.conf beside $SLURM_CONF and refuses it unless it is private
  cat > "$ETC/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=difflab
StorageLoc=slurm_acct_db
CONF
  chmod 600 "$ETC/slurmdbd.conf"
  cat > "$ETC/my.cnf" <<CONF
[mariadbd]
user=mysql
datadir=$DB/data
socket=$DB/mysqld.sock
pid-file=$DB/mysqld.pid
bind-address=127.0.0.1
port=3306
innodb_buffer_pool_size=128M
skip-name-resolve
CONF
}

start_munge() {
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  if munge -n >/dev/null 2>&1; then log "munged: already running"; return; fi
  runuser -u munge -- /usr/sbin/munged
  wait_for 50 munge -n || { echo "error: munged did not start" >&2; exit 1; }
  cp /run/munge/munged.pid "$RUN/munged.pid"; remember munged; log "munged: started"
}

start_database() {
  if [ ! -d "$DB/data/mysql" ]; then
    mkdir -p "$DB/data"; chown -R mysql:mysql "$DB"
    mariadb-install-db --user=mysql --datadir="$DB/data" --auth-root-authentication-method=socket \
      --skip-test-db >"$LOG/mariadb-install.log" 2>&1
  fi
  if running "$DB/mysqld.pid"; then log "mariadbd: already running"; else
    nohup /usr/sbin/mariadbd --defaults-file="$ETC/my.cnf" >"$LOG/mariadbd.log" 2>&1 &
    wait_for 200 mariadb-admin --socket="$DB/mysqld.sock" ping || { echo "error: MariaDB did not start, see $LOG/mariadbd.log" >&2; exit 1; }
    cp "$DB/mysqld.pid" "$RUN/mariadbd.pid"; remember mariadbd; log "mariadbd: started"
  fi
  mariadb --socket="$DB/mysqld.sock" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'difflab';
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'difflab';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  if running "$RUN/slurmdbd.pid"; then log "slurmdbd: already running"; else
    slurmdbd
    wait_for 200 bash -c 'exec 3<>/dev/tcp/127.0.0.1/6819' || { echo "error: slurmdbd did not start, see $LOG/slurmdbd.log" >&2; exit 1; }
    remember slurmdbd; log "slurmdbd: started"
  fi
}

start_slurm() {
  if running "$RUN/slurmctld.pid"; then scontrol reconfigure >/dev/null 2>&1 || true; log "slurmctld: already running"; else
    slurmctld; remember slurmctld; log "slurmctld: started"
  fi
  if running "$RUN/slurmd.pid"; then log "slurmd: already running"; else
    slurmd -N "$(hostname -s)"; remember slurmd; log "slurmd: started"
  fi
  local node state
  node=$(hostname -s)
  for _ in $(seq 300); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
    case "$state" in
      idle|mixed|allocated) echo "export SLURM_CONF=$SLURM_CONF" > "$DIR/env.sh"; log "node $node: $state; now: . $DIR/env.sh"; return ;;
      down*|drain*) scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.1
  done
  echo "error: node $node did not become idle (state '$state'); see $LOG/slurmctld.log and $LOG/slurmd.log" >&2
  exit 1
}

stop_all() {
  [ -f "$STARTED" ] || { log "nothing recorded as started in $STARTED"; }
  for d in slurmd slurmctld slurmdbd mariadbd munged; do
    grep -qx "$d" "$STARTED" 2>/dev/null || continue
    local pid
    pid=$(cat "$RUN/$d.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      log "$d: stopped"
    fi
    rm -f "$RUN/$d.pid"; sed -i "/^$d\$/d" "$STARTED"
    [ "$d" = munged ] && rm -f /run/munge/munged.pid
  done
  if [ "${WIPE:-0}" = 1 ]; then rm -rf "$STATE" "$DB" "$RUN"; log "job state and accounting database wiped"; fi
}

case "${1:-}" in
  start)
    mkdir -p "$DIR" "$ETC" "$RUN" "$LOG" "$STATE/ctld" "$STATE/d"
    chmod 755 "$DIR"   # MariaDB runs as mysql and must traverse it
    install_packages; write_configs; start_munge; start_database; start_slurm ;;
  stop) stop_all ;;
  status) sinfo; cat "$STARTED" 2>/dev/null || true ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
