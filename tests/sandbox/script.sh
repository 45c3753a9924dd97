#!/bin/sh
# Runs inside the sandbox (busybox sh) as /test.sh ROOT, where ROOT is "rw"
# (the root is writable: exercise /w) or "ro" (writes to /w must fail).
# Mounts (see test_sandbox.py): /mnt/rw bind rw, /mnt/rw/nested bind rw inside
# it, /mnt/ro bind ro (holds seed, hello.sh, existing, dir/), /mnt/mem claimed
# by the memfs extension (a host bind mount under runsc's own gofer).
#
# Everything printed is the transcript compared between runsc's gofer and
# ours, so every step prints its exit status and its output, errors included.
# Exits 7: the test checks that runsc propagates it.

step() {        # step NAME CMD...: run CMD, print "NAME rc=N" and its output
  name=$1; shift
  out=$("$@" 2>&1)
  echo "$name rc=$?"
  [ -n "$out" ] && echo "$out" | sed 's/^/  /'
}

exercise() {    # every kind of mutation in $1, which should be writable
  d=$1
  echo "== exercise $d"
  step mkdir-p mkdir -p $d/t/a/b/c
  step write sh -c "echo hello > $d/t/f"
  step append sh -c "echo world >> $d/t/f"
  step cat cat $d/t/f
  step truncate truncate -s 3 $d/t/f
  step cat-truncated sh -c "cat $d/t/f; echo"
  step rename mv $d/t/f $d/t/g
  step symlink ln -s g $d/t/sym
  step readlink readlink $d/t/sym
  step cat-symlink cat $d/t/sym
  step hardlink ln $d/t/g $d/t/hard
  step chmod chmod 640 $d/t/g
  step touch-t touch -t 200102030405.06 $d/t/g
  step stat stat -c '%n %s %a %h %F %Y' $d/t/g $d/t/hard
  step stat-symlink stat -c '%n %s %F' $d/t/sym
  step mkfifo mkfifo $d/t/fifo
  step fifo sh -c "echo through-the-fifo > $d/t/fifo & cat $d/t/fifo; wait"
  step rmdir rmdir $d/t/a/b/c
  step ls-la ls -la $d/t $d/t/a
  step find sh -c "find $d/t | sort"
  step rm-r rm -r $d/t/a
  step ls-after ls -la $d/t
}

readonly_probe() {   # every kind of mutation in $1 must fail; reads still work
  d=$1
  echo "== read-only $d"
  step create touch $d/new
  step write sh -c "echo x > $d/existing"
  step append sh -c "echo x >> $d/existing"
  step truncate truncate -s 0 $d/existing
  step mkdir mkdir $d/newdir
  step rmdir rmdir $d/dir
  step rm rm $d/existing
  step rename mv $d/existing $d/moved
  step chmod chmod 600 $d/existing
  step touch-t touch -t 200001010000 $d/existing
  step symlink ln -s x $d/sl
  step hardlink ln $d/existing $d/hl
  step mkfifo mkfifo $d/ff
  step read cat $d/existing
}

concurrent() {  # 4 writers at once: each its own file, all appending to one
  d=$1
  echo "== concurrent writers in $d"
  mkdir -p $d/conc
  for i in 1 2 3 4; do
    (j=0; while [ $j -lt 250 ]; do
       echo "writer $i line $j" >> $d/conc/shared
       echo "$j" >> $d/conc/own$i
       j=$((j+1))
     done) &
  done
  wait
  step wc wc -l $d/conc/shared $d/conc/own1 $d/conc/own2 $d/conc/own3 $d/conc/own4
  step sorted-md5 sh -c "sort $d/conc/shared | md5sum"
}

echo "== root"
step ls-root ls -la /
step ls-mnt ls -la /mnt
step cat-passwd cat /etc/passwd
step find-root sh -c "find / -xdev | wc -l"
step find-mnt sh -c "find /mnt | sort"

if [ "$1" = ro ]; then readonly_probe /w; else exercise /w; fi
exercise /mnt/rw
exercise /mnt/rw/nested
exercise /mnt/mem
readonly_probe /mnt/ro
concurrent /mnt/rw

echo "== big file"
step dd sh -c "dd if=/mnt/ro/seed of=/mnt/rw/big bs=1M 2>/dev/null"
step md5sum md5sum /mnt/rw/big /mnt/ro/seed

echo "== exec"
step exec-root /bin/busybox echo run from the rootfs
step exec-ro /mnt/ro/hello.sh
step copy-rw cp /bin/busybox /mnt/rw/busybox
step exec-rw /mnt/rw/busybox echo run from a bind mount
step exit-status sh -c "exit 3"

echo "== exec /mnt/mem"
step copy-mem cp /bin/busybox /mnt/mem/busybox
step exec-mem /mnt/mem/busybox echo run from memfs

echo "== done"
exit 7
