// The scale scenario's engine (scripts/bench --scale): the smallest process that passes
// for an OpenAI-compatible server, so a thousand of them fit in memory and the benchmark
// measures agentron, not the engines. One thread, one poll loop, keep-alive.
//
//   tiny_engine --host 127.0.0.1 --port 8001 --model NAME
//
// GET /health answers 200 {}; GET /v1/models lists NAME; anything else 404. Requests are
// read up to the blank line (no bodies: probes are GETs). SIGTERM and SIGINT end it.
#define _GNU_SOURCE  // accept4
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define BUFFER 4096

struct client {
    int fd;
    size_t used;
    char buffer[BUFFER];
};

static volatile sig_atomic_t stopping = 0;
static void on_signal(int signal_number) { (void)signal_number; stopping = 1; }

static void reply(int fd, const char *status, const char *body) {
    char out[BUFFER];
    int length = snprintf(out, sizeof out,
                          "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", status,
                          strlen(body), body);
    if (length > 0) (void)!write(fd, out, (size_t)length);
}

// Answers every whole request in the buffer; returns -1 when the client should be closed.
static int serve(struct client *client, const char *models) {
    for (;;) {
        client->buffer[client->used] = '\0';
        char *end = strstr(client->buffer, "\r\n\r\n");
        if (end == NULL) return client->used < BUFFER - 1 ? 0 : -1;
        if (strncmp(client->buffer, "GET /health ", 12) == 0) {
            reply(client->fd, "200 OK", "{}");
        } else if (strncmp(client->buffer, "GET /v1/models ", 15) == 0) {
            reply(client->fd, "200 OK", models);
        } else {
            reply(client->fd, "404 Not Found", "{\"error\":\"not found\"}");
        }
        size_t taken = (size_t)(end + 4 - client->buffer);
        memmove(client->buffer, end + 4, client->used - taken);
        client->used -= taken;
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *model = "tiny";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--model") == 0) model = argv[i + 1];
    }
    char models[512];
    snprintf(models, sizeof models, "{\"object\":\"list\",\"data\":[{\"id\":\"%.400s\",\"object\":\"model\"}]}", model);

    struct sigaction action = {0};
    action.sa_handler = on_signal;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1 ||
        bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 64) != 0) {
        fprintf(stderr, "tiny_engine: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    fprintf(stderr, "tiny_engine: serving %s on %s:%d\n", model, host, port);

    static struct client clients[MAX_CLIENTS];
    struct pollfd fds[MAX_CLIENTS + 1];
    int count = 0;
    while (!stopping) {
        fds[0] = (struct pollfd){.fd = listener, .events = POLLIN};
        for (int i = 0; i < count; i++) fds[i + 1] = (struct pollfd){.fd = clients[i].fd, .events = POLLIN};
        if (poll(fds, (nfds_t)count + 1, -1) < 0) continue;
        for (int i = count - 1; i >= 0; i--) {
            if (!(fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            struct client *client = &clients[i];
            ssize_t got = read(client->fd, client->buffer + client->used, BUFFER - 1 - client->used);
            if (got <= 0 || (client->used += (size_t)got, serve(client, models) < 0)) {
                close(client->fd);
                clients[i] = clients[--count];
            }
        }
        if (fds[0].revents & POLLIN) {
            int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) continue;
            if (count == MAX_CLIENTS) {
                close(fd);
                continue;
            }
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
            clients[count].fd = fd;
            clients[count].used = 0;
            count++;
        }
    }
    return 0;
}
