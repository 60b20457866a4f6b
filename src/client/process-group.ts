/**
 * Process groups of the commands a device runs. Every command is spawned as the leader of its own session and
 * group (`detached: true` calls setsid(); node-pty makes a session leader), so killing the group (`kill(-pid)`)
 * also kills what the command started (`sh -c "sleep 30"` leaves no `sleep`). On Linux `killGroup` also kills
 * the rest of the session, which catches the jobs an interactive shell put in groups of their own.
 * `ProcessGroups` remembers the live groups so a device that stops can kill them all.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Sends `signal` to the process group led by `pid` (on Windows, to the process). False when it is already gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    if (process.platform === 'win32') process.kill(pid, signal);
    else process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, tty_nr, tpgid, ...]. */
function procStat(pid: number | string): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Linux: the processes of session `sid` (none elsewhere). */
function sessionMembers(sid: number): number[] {
  if (process.platform !== 'linux') return [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    if (Number(procStat(n)?.[3]) === sid) out.push(Number(n));
  }
  return out;
}

/**
 * Linux: the foreground process group of the terminal that `pid` (a PTY's session leader) controls, e.g. the
 * job an interactive shell runs; `pid` itself when it cannot be read.
 */
export function foregroundGroup(pid: number): number {
  const tpgid = Number(procStat(pid)?.[5]);
  return Number.isInteger(tpgid) && tpgid > 0 ? tpgid : pid;
}

/** SIGKILLs the whole group led by `pid`, and on Linux the rest of its session. */
export function killGroup(pid: number): boolean {
  const sent = signalGroup(pid, 'SIGKILL');
  for (const member of sessionMembers(pid)) {
    try {
      process.kill(member, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return sent;
}

export class ProcessGroups {
  private readonly live = new Set<number>();

  /** Tracks the group led by `pid` until `release(pid)`. */
  add(pid: number): void {
    this.live.add(pid);
  }
  /** The leader exited (its group may still hold children, which `killAll` no longer reaches). */
  release(pid: number): void {
    this.live.delete(pid);
  }
  get size(): number {
    return this.live.size;
  }
  /** SIGKILLs every tracked group; returns how many were signalled. */
  killAll(): number {
    let n = 0;
    for (const pid of this.live) if (killGroup(pid)) n++;
    this.live.clear();
    return n;
  }
}
