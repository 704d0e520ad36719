/*
 * netc-cni, the shim: the CNI plugin a node runs when it has no Python.
 *
 * A container runtime execs this for every CNI call.  It answers VERSION
 * itself and hands every other call to the warm server of netc's agent
 * (`netc serve-cni`, runtime/cni/server.py), which runs netc's plugin in the
 * caller's namespaces, with its environment and its standard streams --
 * the protocol of the Python launcher (runtime/install.py), byte for byte:
 *
 *   -> "netc-cni", protocol 1, payload length (4 bytes, big-endian),
 *      payload: identity NUL KEY=VALUE NUL KEY=VALUE ...
 *   <- READY (253), or NOT_ME (254)
 *   -> GO (1), with SCM_RIGHTS: stdin, stdout, stderr, netns, mntns
 *   <- STARTED (252), then the call's exit status (1 byte)
 *
 * The server behind the socket must be root (SO_PEERCRED), or it gets
 * neither the call nor the caller's stdout.  When no server takes the call
 * -- the agent is not running, or it is another netc's -- the shim runs the
 * configured cold command (a Python launcher, where the host has one), or
 * answers CNI error 11, "try again later": a runtime retries ADD and DEL.
 *
 * What it needs to know (the socket, netc's identity, the CNI versions, the
 * cold command) is written into `config` below by whoever installs it
 * (runtime/shim.py), so a call reads no file.  Static, no allocation, the C
 * library's system call wrappers and little else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MARK "NETC-SHIM-CONFIG-1"
#define CONFIG_SIZE 8192
#define READY 253
#define STARTED 252
#define NOT_ME 254
#define GO 1
#define PAYLOAD_MAX (8 << 20)
#define TRY_AGAIN 11

/* MARK, NUL, then KEY=VALUE NUL ... NUL: socket, identity, version, versions, handover_ms,
   status_ms, and cold (argv, fields separated by the byte 0x1f).  The installer finds the
   mark in the binary and overwrites the block; an unconfigured shim answers code 11. */
volatile char config[CONFIG_SIZE] = MARK;

extern char **environ;

static const char *setting(const char *key) {
    size_t length = strlen(key);
    const char *entry = (const char *)config + sizeof(MARK);
    const char *end = (const char *)config + CONFIG_SIZE;
    while (entry < end && *entry) {
        if (strncmp(entry, key, length) == 0 && entry[length] == '=')
            return entry + length + 1;
        entry += strnlen(entry, (size_t)(end - entry)) + 1;
    }
    return NULL;
}

static long number(const char *key, long otherwise) {
    const char *text = setting(key);
    return text ? strtol(text, NULL, 10) : otherwise;
}

static void write_all(int fd, const char *data, size_t size) {
    while (size) {
        ssize_t written = write(fd, data, size);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        data += written;
        size -= (size_t)written;
    }
}

static void say(int fd, const char *text) { write_all(fd, text, strlen(text)); }

/* stdin, whole, into `buffer` (VERSION's look at "cniVersion"); its size. */
static size_t read_stdin(char *buffer, size_t size) {
    size_t have = 0;
    while (have < size - 1) {
        ssize_t got = read(0, buffer + have, size - 1 - have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        have += (size_t)got;
    }
    buffer[have] = 0;
    return have;
}

/* The cniVersion stdin states (digits and dots), or the default, into `out`. */
static void stated_version(const char *data, char *out, size_t size) {
    const char *fallback = setting("version") ? setting("version") : "1.0.0";
    snprintf(out, size, "%s", fallback);
    const char *key = strstr(data, "\"cniVersion\"");
    if (!key)
        return;
    const char *colon = strchr(key + 12, ':');
    const char *open = colon ? strchr(colon, '"') : NULL;
    const char *close = open ? strchr(open + 1, '"') : NULL;
    if (!close || close == open + 1 || (size_t)(close - open - 1) >= size)
        return;
    for (const char *c = open + 1; c < close; c++)
        if (!((*c >= '0' && *c <= '9') || *c == '.'))
            return;
    snprintf(out, size, "%.*s", (int)(close - open - 1), open + 1);
}

static int answer_version(void) {
    static char data[1 << 16];
    char version[32], line[512];
    read_stdin(data, sizeof data);
    stated_version(data, version, sizeof version);
    const char *versions = setting("versions") ? setting("versions") : "\"1.0.0\"";
    snprintf(line, sizeof line, "{\"cniVersion\": \"%s\", \"supportedVersions\": [%s]}\n",
             version, versions);
    say(1, line);
    return 0;
}

/* CNI error 11 on stdout, in the version the configuration states. */
static int try_again(const char *message, const char *details) {
    static char data[1 << 16];
    char version[32], line[1024];
    read_stdin(data, sizeof data);
    stated_version(data, version, sizeof version);
    snprintf(line, sizeof line,
             "{\"cniVersion\": \"%s\", \"code\": %d, \"msg\": \"%s\", \"details\": \"%s\"}\n",
             version, TRY_AGAIN, message, details);
    say(1, line);
    return 1;
}

static long long now_ms(void) {
    struct timespec moment;
    clock_gettime(CLOCK_MONOTONIC, &moment);
    return (long long)moment.tv_sec * 1000 + moment.tv_nsec / 1000000;
}

/* Wait until `fd` is readable or writable before `deadline` (ms); 0 when it is. */
static int wait_for(int fd, short events, long long deadline) {
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd poll_fd = {.fd = fd, .events = events};
        int ready = poll(&poll_fd, 1, (int)left);
        if (ready > 0)
            return 0;
        if (ready < 0 && errno != EINTR)
            return -1;
    }
}

static int send_all(int fd, const char *data, size_t size, long long deadline) {
    while (size) {
        if (wait_for(fd, POLLOUT, deadline))
            return -1;
        ssize_t sent = send(fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        data += sent;
        size -= (size_t)sent;
    }
    return 0;
}

/* One byte from the server before `deadline` (-1 ms: no deadline); -1 when none came. */
static int receive(int fd, long long deadline) {
    unsigned char byte;
    for (;;) {
        if (deadline >= 0 && wait_for(fd, POLLIN, deadline))
            return -1;
        ssize_t got = recv(fd, &byte, 1, deadline >= 0 ? MSG_DONTWAIT : 0);
        if (got == 1)
            return byte;
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return -1;
    }
}

/* The hand-over's payload: identity NUL KEY=VALUE NUL ...; its length, or -1. */
static long payload(char *buffer, size_t size) {
    const char *identity = setting("identity");
    size_t at = strlen(identity) + 1;
    if (at > size)
        return -1;
    memcpy(buffer, identity, at);
    for (char **entry = environ; *entry; entry++) {
        size_t length = strlen(*entry);
        if (at + length + 1 > size)
            return -1;
        memcpy(buffer + at, *entry, length);
        at += length;
        buffer[at++] = 0;
    }
    return (long)(at - 1);  /* no NUL after the last entry */
}

/* Offer the call; 1 once GO and the descriptors are sent, 0 when the server declined. */
static int offer(int server, long long deadline) {
    struct ucred peer;
    socklen_t length = sizeof peer;
    if (getsockopt(server, SOL_SOCKET, SO_PEERCRED, &peer, &length) || peer.uid != 0)
        return 0;  /* not root: whoever it is gets neither the call nor our stdout */
    static char buffer[PAYLOAD_MAX];
    long size = payload(buffer + 13, sizeof buffer - 13);
    if (size < 0)
        return 0;
    memcpy(buffer, "netc-cni", 8);
    buffer[8] = 1;
    buffer[9] = (char)((size >> 24) & 0xff);
    buffer[10] = (char)((size >> 16) & 0xff);
    buffer[11] = (char)((size >> 8) & 0xff);
    buffer[12] = (char)(size & 0xff);
    if (send_all(server, buffer, (size_t)size + 13, deadline) || receive(server, deadline) != READY)
        return 0;
    int fds[5] = {0, 1, 2, open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC),
                  open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC)};
    if (fds[3] < 0 || fds[4] < 0)
        return 0;
    char go = GO;
    struct iovec vector = {.iov_base = &go, .iov_len = 1};
    char control[CMSG_SPACE(sizeof fds)];
    memset(control, 0, sizeof control);
    struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1, .msg_control = control,
                             .msg_controllen = sizeof control};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(header), fds, sizeof fds);
    if (wait_for(server, POLLOUT, deadline) || sendmsg(server, &message, MSG_NOSIGNAL) != 1)
        return 0;
    close(fds[3]);
    close(fds[4]);
    return 1;
}

/* The call run without a server: the cold command, or CNI error 11. */
static int cold(char **argv) {
    const char *command = setting("cold");
    const char *socket_path = setting("socket");
    if (command && *command) {
        static char copy[CONFIG_SIZE];
        char *args[64];
        int count = 0;
        snprintf(copy, sizeof copy, "%s", command);
        for (char *field = strtok(copy, "\x1f"); field && count < 62; field = strtok(NULL, "\x1f"))
            args[count++] = field;
        for (int i = 1; argv[i] && count < 63; i++)
            args[count++] = argv[i];
        args[count] = NULL;
        execv(args[0], args);
        return try_again("netc-cni could not start its cold path", args[0]);
    }
    char details[512];
    snprintf(details, sizeof details, "nothing answered on %s: netc's agent runs the plugin on "
             "this node and is not running; the runtime retries", socket_path ? socket_path : "?");
    return try_again("netc's agent is not running on this node: try again later", details);
}

int main(int argc, char **argv) {
    (void)argc;
    const char *command = getenv("CNI_COMMAND");
    if (command && strcmp(command, "VERSION") == 0)
        return answer_version();
    const char *socket_path = setting("socket");
    if (!socket_path || !setting("identity"))
        return cold(argv);
    int server = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (server < 0 || strlen(socket_path) >= sizeof address.sun_path)
        return cold(argv);
    strcpy(address.sun_path, socket_path);
    long long deadline = now_ms() + number("handover_ms", 2000);
    if (connect(server, (struct sockaddr *)&address, sizeof address) &&
        (errno != EINPROGRESS || wait_for(server, POLLOUT, deadline)))
        return close(server), cold(argv);
    if (!offer(server, deadline))
        return close(server), cold(argv);
    int answer = receive(server, now_ms() + number("status_ms", 300000));
    if (answer < 0 || answer == NOT_ME)  /* it ran nothing after all */
        return close(server), cold(argv);
    int status = answer == STARTED ? receive(server, now_ms() + number("status_ms", 300000)) : -1;
    if (status >= 0)
        return status;
    return try_again("the warm server's process for this call ended without an exit status",
                     "try again later");
}
