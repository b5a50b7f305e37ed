import Glibc

// SIGTERM and SIGINT are taken by one thread with sigwait (ContainerShim+Signals.swift);
// block them before any other thread exists so every later thread inherits the mask.
var blocked = sigset_t()
sigemptyset(&blocked)
sigaddset(&blocked, SIGTERM)
sigaddset(&blocked, SIGINT)
pthread_sigmask(SIG_BLOCK, &blocked, nil)

await ContainerShim.runAsync()
