#!/bin/bash
# Disk syscalls per single append at one client: starts BIN on a fresh folder, registers a
# source and an actor, then attaches strace -c to the server during N sequential single appends
# over one keep-alive connection. Counts, not timings, so it reads the same on a loaded machine
# (a timing line is printed too; trust it only on a quiet one). It must never be pointed at a
# data folder that matters: it makes its own, ANNALS_TMP/annals-syscalls-TAG (default /tmp), emptied at each run.
#   bash benches/append_syscalls.sh BIN TAG [N]
set -e; trap "kill -TERM \$PID 2>/dev/null" EXIT
BIN=$1; TAG=$2; N=${3:-300}; W="${ANNALS_TMP:-/tmp}/annals-syscalls-$TAG"; rm -rf "$W"; mkdir -p "$W"
KN="$($BIN keys new --principal st --scopes append,read)"; KEY=$(printf '%s\n' "$KN" | awk '/^key: /{print $2}')
printf '%s\n' "$KN" | sed -n '/^\[\[auth.keys\]\]/,$p' > $W/a.toml
$BIN serve --config $W/a.toml --data-dir $W/data --listen 127.0.0.1:0 > $W/out 2>$W/err & PID=$!
for i in $(seq 100); do grep -q listening $W/out 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/listening on //p' $W/out | head -1)
python3 - "$BASE" "$KEY" 0 <<'PY'
import sys,json,urllib.request
base,key=sys.argv[1],sys.argv[2]
def post(s,b):
    r=urllib.request.Request(f"{base}/streams/{s.replace('/','%2F')}/events",data=json.dumps(b).encode(),headers={"Authorization":"Bearer "+key,"Content-Type":"application/json"})
    return urllib.request.urlopen(r).status
post("registry/sources",{"type":"source.registered","occurred":{"start":"2026-01-22","precision":"day"},"data":{"source_id":"src:w","kind":"wire","publisher":"W"},"evidence":[]})
post("registry/actors",{"type":"actor.registered","data":{"actor_id":"actor:a","name":"A","kind":"person"},"evidence":[{"source":"src:w","relation":"reports"}]})
PY
strace -f -c -o $W/strace.txt -p $PID -e trace=fdatasync,fsync,sync_file_range,pwrite64,write,futex & SP=$!
sleep 1
python3 - "$BASE" "$KEY" $N <<'PY'
import sys,json,http.client,time
base,key,n=sys.argv[1],sys.argv[2],int(sys.argv[3])
host=base[len("http://"):]
c=http.client.HTTPConnection(host)
t=time.time()
for i in range(n):
    b={"type":"statement.made","occurred":{"start":"2026-01-22","precision":"day"},"process":"p","data":{"statement_id":f"statement:s-{i}","speaker":"actor:a","content":f"S {i}."},"evidence":[{"source":"src:w","relation":"quotes","quote":f"n {i}"}]}
    c.request("POST","/streams/process%2Fp/events",body=json.dumps(b),headers={"Authorization":"Bearer "+key,"Content-Type":"application/json"})
    r=c.getresponse(); r.read(); assert r.status==201,r.status
print(f"{n} singles in {time.time()-t:.2f}s")
PY
kill -INT $SP; wait $SP 2>/dev/null || true
kill -TERM $PID; wait $PID 2>/dev/null || true
grep -E "calls|sync|pwrite|write|futex" $W/strace.txt | head -12
