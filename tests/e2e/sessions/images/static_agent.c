/* static_agent: a non-Python agent for container-image tests, built with `cc -static`.
 *
 * Speaks the AgentCore container contract on 0.0.0.0:$PORT (default 8080):
 *   GET  /ping         -> {"status":"Healthy",...}
 *   POST /invocations  -> a JSON report of what the process sees (ids, cwd, argv, selected
 *                         environment, isolation probes); with "stream" in the body, Server-Sent
 *                         Events (5 events, 100 ms apart) instead; with "hog", memory is
 *                         allocated until the sandbox's limit kills the handling process.
 * One forked child per connection, so /ping is answered while a stream is running.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

static int g_argc;
static char **g_argv;

static void put(int fd, const char *s) {
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* Appends a JSON string literal of s to buf. */
static void jstr(char *buf, size_t cap, const char *s) {
    size_t len = strlen(buf);
    if (!s) { snprintf(buf + len, cap - len, "null"); return; }
    if (len + 2 >= cap) return;
    buf[len++] = '"';
    for (; *s && len + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { buf[len++] = '\\'; buf[len++] = c; }
        else if (c < 0x20) len += (size_t)sprintf(buf + len, "\\u%04x", c);
        else buf[len++] = c;
    }
    buf[len++] = '"';
    buf[len] = 0;
}

static void cat(char *buf, size_t cap, const char *s) {
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, "%s", s);
}

static void file_line(const char *path, const char *prefix, char *out, size_t cap) {
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!prefix || strncmp(line, prefix, strlen(prefix)) == 0) {
            line[strcspn(line, "\n")] = 0;
            snprintf(out, cap, "%s", line);
            break;
        }
    }
    fclose(f);
}

static void report(int fd, const char *body) {
    static char out[65536];
    char tmp[1024];
    out[0] = 0;
    cat(out, sizeof out, "{\"agent\":\"static\"");
    snprintf(tmp, sizeof tmp, ",\"uid\":%d,\"gid\":%d,\"euid\":%d,\"pid\":%d", (int)getuid(),
             (int)getgid(), (int)geteuid(), (int)getpid());
    cat(out, sizeof out, tmp);
    char cwd[512] = "";
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
    cat(out, sizeof out, ",\"cwd\":");
    jstr(out, sizeof out, cwd);
    cat(out, sizeof out, ",\"argv\":[");
    for (int i = 0; i < g_argc; i++) {
        if (i) cat(out, sizeof out, ",");
        jstr(out, sizeof out, g_argv[i]);
    }
    cat(out, sizeof out, "],\"env\":{");
    const char *names[] = {"PATH", "HOME", "IMG_VAR", "IMG_OVERRIDE", "RT_VAR", "AWS_REGION",
                           "AGENTCORE_RUNTIME_URL", "HANGAR_HOST_LOOPBACK", NULL};
    for (int i = 0; names[i]; i++) {
        if (i) cat(out, sizeof out, ",");
        jstr(out, sizeof out, names[i]);
        cat(out, sizeof out, ":");
        jstr(out, sizeof out, getenv(names[i]));
    }
    cat(out, sizeof out, "}");
    file_line("/proc/self/uid_map", NULL, tmp, sizeof tmp);
    cat(out, sizeof out, ",\"uid_map\":");
    jstr(out, sizeof out, tmp);
    file_line("/proc/self/status", "CapEff:", tmp, sizeof tmp);
    cat(out, sizeof out, ",\"cap_eff\":");
    jstr(out, sizeof out, tmp);
    /* The root is read-only; /tmp is private and writable. */
    int w = open("/probe-write", O_CREAT | O_WRONLY, 0644);
    snprintf(tmp, sizeof tmp, ",\"root_write_errno\":%d", w < 0 ? errno : 0);
    cat(out, sizeof out, tmp);
    if (w >= 0) close(w);
    w = open("/tmp/probe-write", O_CREAT | O_WRONLY, 0644);
    snprintf(tmp, sizeof tmp, ",\"tmp_write_ok\":%s", w >= 0 ? "true" : "false");
    cat(out, sizeof out, tmp);
    if (w >= 0) close(w);
    /* Host paths that must not be visible. */
    struct stat st;
    snprintf(tmp, sizeof tmp, ",\"sees_host_python\":%s,\"sees_host_passwd_shadow\":%s",
             stat("/usr/bin/python3", &st) == 0 ? "true" : "false",
             stat("/etc/shadow", &st) == 0 ? "true" : "false");
    cat(out, sizeof out, tmp);
    /* Processes visible: only this sandbox's (own PID namespace). */
    int procs = 0;
    DIR *d = opendir("/proc");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9') procs++;
        closedir(d);
    }
    snprintf(tmp, sizeof tmp, ",\"visible_processes\":%d", procs);
    cat(out, sizeof out, tmp);
    char host[256] = "";
    gethostname(host, sizeof host);
    cat(out, sizeof out, ",\"hostname\":");
    jstr(out, sizeof out, host);
    cat(out, sizeof out, ",\"body\":");
    jstr(out, sizeof out, body);
    cat(out, sizeof out, "}");
    snprintf(tmp, sizeof tmp,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             strlen(out));
    put(fd, tmp);
    put(fd, out);
}

static void handle(int fd) {
    static char req[1 << 20];
    size_t len = 0;
    char *end = NULL;
    while (len < sizeof req - 1) {
        ssize_t r = read(fd, req + len, sizeof req - 1 - len);
        if (r <= 0) return;
        len += (size_t)r;
        req[len] = 0;
        if ((end = strstr(req, "\r\n\r\n"))) break;
    }
    if (!end) return;
    size_t head = (size_t)(end - req) + 4;
    size_t clen = 0;
    for (char *p = req; p < end; p++) {
        if ((p == req || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
            clen = (size_t)strtoul(p + 15, NULL, 10);
    }
    while (len < head + clen && len < sizeof req - 1) {
        ssize_t r = read(fd, req + len, sizeof req - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
    }
    req[len] = 0;
    const char *body = req + head;
    if (strncmp(req, "GET /ping", 9) == 0) {
        char out[256], msg[128];
        snprintf(msg, sizeof msg, "{\"status\":\"Healthy\",\"time_of_last_update\":%ld}",
                 (long)time(NULL));
        snprintf(out, sizeof out,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n%s",
                 strlen(msg), msg);
        put(fd, out);
    } else if (strncmp(req, "POST /invocations", 17) == 0) {
        if (strstr(body, "\"hog\"")) {
            /* Allocate and touch memory until the sandbox's limit stops this process. */
            for (int mib = 4; mib <= 1024; mib += 4) {
                char *p = malloc(4 << 20);
                if (!p) break;
                memset(p, 1, 4 << 20);
                fprintf(stderr, "static_agent allocated %d MiB\n", mib);
            }
            report(fd, "hog survived");
        } else if (strstr(body, "\"stream\"")) {
            put(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
            for (int i = 0; i < 5; i++) {
                char ev[128];
                snprintf(ev, sizeof ev, "data: {\"agent\":\"static\",\"index\":%d}\n\n", i);
                put(fd, ev);
                usleep(100000);
            }
        } else {
            report(fd, body);
        }
    } else {
        put(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
}

int main(int argc, char **argv) {
    g_argc = argc;
    g_argv = argv;
    if (argc > 1 && strcmp(argv[1], "--fail") == 0) {
        fprintf(stderr, "static_agent: failing on purpose at start-up\n");
        return 3;
    }
    signal(SIGCHLD, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    const char *port = getenv("PORT");
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(port ? port : "8080"));
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64)) {
        perror("static_agent: bind/listen");
        return 1;
    }
    fprintf(stderr, "static_agent listening\n");
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        pid_t p = fork();
        if (p == 0) {
            close(s);
            handle(c);
            shutdown(c, SHUT_WR);
            close(c);
            _exit(0);
        }
        close(c);
    }
}
