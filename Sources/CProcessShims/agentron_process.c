#define _GNU_SOURCE
#include "CProcessShims.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/// Writes the errno to the status pipe and exits; only async-signal-safe calls.
static void child_fail(int status_fd, int error) {
    ssize_t unused = write(status_fd, &error, sizeof(error));
    (void)unused;
    _exit(127);
}

/// fork(), or clone3(CLONE_INTO_CGROUP) when a cgroup is given: the child is born in the
/// cgroup, which saves the write to cgroup.procs (measured at 12-22 ms: the kernel waits
/// for an RCU grace period on migration). Returns as fork() does; *joined tells whether the
/// child is already in the cgroup.
static pid_t spawn_fork(int cgroup_dir_fd, int *joined) {
    *joined = 0;
#if defined(SYS_clone3) && defined(CLONE_INTO_CGROUP)
    if (cgroup_dir_fd >= 0) {
        struct clone_args args;
        memset(&args, 0, sizeof(args));
        args.flags = CLONE_INTO_CGROUP;
        args.exit_signal = SIGCHLD;
        args.cgroup = (unsigned long long)cgroup_dir_fd;
        long pid = syscall(SYS_clone3, &args, sizeof(args));
        if (pid >= 0) {
            *joined = 1;
            return (pid_t)pid;
        }
        // Older kernels (ENOSYS, E2BIG) or a cgroup clone3 refuses: fork and write instead.
    }
#else
    (void)cgroup_dir_fd;
#endif
    return fork();
}

int agentron_spawn(const char *path, char *const argv[], char *const envp[],
                   int output_fd, int cgroup_dir_fd, const char *cwd, pid_t *out_pid) {
    int status_pipe[2];
    if (pipe2(status_pipe, O_CLOEXEC) != 0) return errno;

    // The child of a multi-threaded process may only make async-signal-safe calls until
    // exec: everything it needs is prepared here, in the parent.
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) {
        int error = errno;
        close(status_pipe[0]);
        close(status_pipe[1]);
        return error;
    }

    // For the fork fallback: cgroup.procs, opened here because the child may not allocate.
    int cgroup_procs_fd = -1;
    if (cgroup_dir_fd >= 0) cgroup_procs_fd = openat(cgroup_dir_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);

    int joined = 0;
    pid_t pid = spawn_fork(cgroup_dir_fd, &joined);
    if (pid < 0) {
        int error = errno;
        close(status_pipe[0]);
        close(status_pipe[1]);
        close(devnull);
        if (cgroup_procs_fd >= 0) close(cgroup_procs_fd);
        return error;
    }
    if (pid == 0) {
        // Child.
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        for (int sig = 1; sig < NSIG; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP) continue;
            signal(sig, SIG_DFL);
        }
        if (setsid() < 0) child_fail(status_pipe[1], errno);
        if (!joined && cgroup_dir_fd >= 0) {
            if (cgroup_procs_fd < 0 || write(cgroup_procs_fd, "0", 1) != 1) child_fail(status_pipe[1], errno);
        }
        if (dup2(devnull, STDIN_FILENO) < 0) child_fail(status_pipe[1], errno);
        if (dup2(output_fd, STDOUT_FILENO) < 0) child_fail(status_pipe[1], errno);
        if (dup2(output_fd, STDERR_FILENO) < 0) child_fail(status_pipe[1], errno);
        if (cwd != NULL && chdir(cwd) != 0) child_fail(status_pipe[1], errno);
        // Descriptors the daemon opened without O_CLOEXEC (its sockets, other engines' logs)
        // must not leak into the engine. Best effort: kernels before 5.11 lack the flag.
        syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
        execve(path, argv, envp);
        child_fail(status_pipe[1], errno);
    }

    // Parent: the pipe reads EOF on a successful exec (close-on-exec), or the child's errno.
    close(status_pipe[1]);
    close(devnull);
    if (cgroup_procs_fd >= 0) close(cgroup_procs_fd);
    int child_error = 0;
    ssize_t n;
    do {
        n = read(status_pipe[0], &child_error, sizeof(child_error));
    } while (n < 0 && errno == EINTR);
    close(status_pipe[0]);
    if (n == sizeof(child_error)) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return child_error != 0 ? child_error : ECHILD;
    }
    *out_pid = pid;
    return 0;
}

int agentron_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int agentron_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int agentron_pidfd_reap(int pidfd, int *code, int *is_signal) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG) != 0) return -1;
    if (info.si_pid == 0) return 0;
    if (info.si_code == CLD_EXITED) {
        *code = info.si_status;
        *is_signal = 0;
    } else {
        *code = info.si_status;
        *is_signal = 1;
    }
    return 1;
}

int agentron_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int agentron_set_process_name(const char *name) {
    return prctl(PR_SET_NAME, name, 0, 0, 0);
}

int agentron_errno(void) {
    return errno;
}
