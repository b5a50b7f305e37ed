// LD_PRELOAD shim for the benchmark (scripts/bench): records, in the engine process
// itself, when it started, when it began listening and when it exited. Loaded into the
// fake engine through the engine's environment (LD_PRELOAD=<this .so>), which agentron
// passes from the profile's env, supervisord from `environment=`, the floor spawner as is.
//
// Writes one line per event to $BENCH_EVENTS (O_APPEND, one write(2) per line):
//   <event> <served-name> <pid> <CLOCK_MONOTONIC ns> <CLOCK_REALTIME ns>
// events: start (constructor, before main), listen (listen(2) returned 0), exit (last
// atexit handler, just before the exit syscall). Only the `vllm serve` main process
// records; its EngineCore child (the same binary re-executed) stays silent.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char served[128] = "";
static int enabled = 0;

static long long ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void record(const char *event) {
    long long mono = ns(CLOCK_MONOTONIC), real = ns(CLOCK_REALTIME);
    const char *path = getenv("BENCH_EVENTS");
    if (!enabled || !path) return;
    char line[256];
    int n = snprintf(line, sizeof line, "%s %s %d %lld %lld\n", event, served, (int)getpid(), mono, real);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (write(fd, line, (size_t)n) < 0) { /* nothing to do */ }
    close(fd);
}

static void on_exit_record(void) { record("exit"); }

__attribute__((constructor)) static void on_start(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc < 2 || strcmp(argv[1], "serve") != 0) return;
    for (int i = 2; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--served-model-name") == 0) {
            snprintf(served, sizeof served, "%s", argv[i + 1]);
            break;
        }
    }
    if (!served[0]) return;
    enabled = 1;
    record("start");
    atexit(on_exit_record);  // registered first, so it runs last
}

int listen(int fd, int backlog) {
    static int (*real_listen)(int, int);
    if (!real_listen) real_listen = (int (*)(int, int))dlsym(RTLD_NEXT, "listen");
    int result = real_listen(fd, backlog);
    if (result == 0) record("listen");
    return result;
}
