#ifndef AGENTRON_PROCESS_H
#define AGENTRON_PROCESS_H

#include <sys/types.h>
#include <signal.h>
#include <sys/epoll.h>

/// Forks and execs `path` with `argv`/`envp` in a new session (so the child leads its own
/// process group and signalling the group never hits the daemon). stdin is /dev/null,
/// stdout and stderr go to `output_fd`. When `cgroup_dir_fd` >= 0 (a cgroup directory) the
/// child starts in that cgroup (clone3 CLONE_INTO_CGROUP, or a write to its cgroup.procs
/// before exec on older kernels), so nothing it starts escapes the cgroup. Signal mask and
/// dispositions are reset (the daemon ignores SIGPIPE; an engine must not inherit that).
/// Returns 0 and the pid in `*out_pid`, or an errno value: a failed exec is reported through
/// a close-on-exec pipe, so ENOENT/EACCES come back here instead of as a mysterious exit 127.
int agentron_spawn(const char *path, char *const argv[], char *const envp[],
                   int output_fd, int cgroup_dir_fd, const char *cwd, pid_t *out_pid);

/// pidfd_open(2): a descriptor that becomes readable when `pid` exits. -1 and errno on failure.
int agentron_pidfd_open(pid_t pid);

/// pidfd_send_signal(2): signal exactly the process behind `pidfd`, never a reused pid.
int agentron_pidfd_send_signal(int pidfd, int sig);

/// waitid(P_PIDFD): reaps the child behind `pidfd` without blocking. Returns 1 and fills
/// `*code`/`*is_signal` when it was reaped, 0 when it is still running, -1 and errno on
/// failure (ECHILD: not our child, e.g. re-adopted after a daemon restart).
int agentron_pidfd_reap(int pidfd, int *code, int *is_signal);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphans of our engines are reparented to us, so a
/// grandchild that left the engine's session is still ours to find and reap.
int agentron_set_child_subreaper(void);

/// prctl(PR_SET_NAME): sets the calling thread's (and, on the main thread, the process') name.
int agentron_set_process_name(const char *name);

/// The errno of the calling thread (Swift cannot read the thread-local macro directly everywhere).
int agentron_errno(void);

#endif
