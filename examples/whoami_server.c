/* whoami_server.c: an HTTP server on a Gatehouse mesh node, in C through include/gatehouse.h.
 * It answers every request with the caller's identity as the node sees it (whois on the
 * connection's tunnel source address): public key, name, allowed IPs. No TUN device, no root.
 *
 *   whoami_c --key-file node.key --address 10.7.0.1[,fd7::1] [--listen-port 51820] \
 *            --peer PUBKEY,ENDPOINT|-,ALLOWEDIP[,ALLOWEDIP...][,name=NAME] [--peer ...] \
 *            [--port 80]
 *
 * A blocking accept loop on the main thread, one detached thread per connection. Stops on
 * SIGINT/SIGTERM (the accept loop wakes every 500 ms to check). */
#define _GNU_SOURCE
#include <gatehouse.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PEERS 64

static volatile sig_atomic_t g_stop = 0;
static int g_active = 0; /* connection threads still running */
static void onSignal(int sig) {
  (void)sig;
  g_stop = 1;
}

struct conn {
  gatehouse_node* node;
  int fd;
  char remote[GATEHOUSE_ADDRSTRLEN];
};

static int writeAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads the request head (up to the blank line, at most 8 KB), answers, closes. */
static void* serve(void* arg) {
  struct conn* c = arg;
  char req[8192];
  size_t got = 0;
  while (got < sizeof req - 1) {
    ssize_t n = read(c->fd, req + got, sizeof req - 1 - got);
    if (n <= 0) break;
    got += (size_t)n;
    req[got] = '\0';
    if (strstr(req, "\r\n\r\n") != NULL) break;
  }
  char body[4096];
  gatehouse_identity id;
  gatehouse_identity_init(&id);
  int rc = gatehouse_whois(c->node, c->remote, &id);
  int len;
  if (rc == GATEHOUSE_OK) {
    len = snprintf(body, sizeof body, "remote=%s\npublic_key=%s\nname=%s\nallowed_ips=", c->remote,
                   id.public_key, id.name);
    for (uint32_t i = 0; i < id.allowed_ip_count && i < GATEHOUSE_MAX_ALLOWED_IPS; ++i) {
      len +=
          snprintf(body + len, sizeof body - (size_t)len, "%s%s", i ? "," : "", id.allowed_ips[i]);
    }
    len += snprintf(body + len, sizeof body - (size_t)len, "\n");
  } else {
    len =
        snprintf(body, sizeof body, "remote=%s\nerror=%s\n", c->remote, gatehouse_errmsg(c->node));
  }
  char head[256];
  int hlen = snprintf(head, sizeof head,
                      "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n",
                      rc == GATEHOUSE_OK ? "200 OK" : "403 Forbidden", len);
  if (writeAll(c->fd, head, (size_t)hlen) == 0) writeAll(c->fd, body, (size_t)len);
  close(c->fd);
  free(c);
  __atomic_sub_fetch(&g_active, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static char* readKeyFile(const char* path) {
  static char key[128];
  FILE* f = fopen(path, "r");
  if (f == NULL || fgets(key, sizeof key, f) == NULL) {
    if (f) fclose(f);
    return NULL;
  }
  fclose(f);
  key[strcspn(key, "\r\n ")] = '\0';
  return key;
}

/* PUBKEY,ENDPOINT|-,ALLOWEDIP[,...][,name=NAME] → a gatehouse_peer (fields point into spec). */
static int parsePeer(char* spec, gatehouse_peer* p, char* ips, size_t ips_len) {
  gatehouse_peer_init(p);
  char* save = NULL;
  p->public_key = strtok_r(spec, ",", &save);
  char* ep = strtok_r(NULL, ",", &save);
  if (p->public_key == NULL || ep == NULL) return -1;
  p->endpoint = strcmp(ep, "-") == 0 ? NULL : ep;
  ips[0] = '\0';
  for (char* f = strtok_r(NULL, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save)) {
    if (strncmp(f, "name=", 5) == 0) {
      p->name = f + 5;
    } else if (strlen(ips) + strlen(f) + 2 < ips_len) {
      if (ips[0] != '\0') strcat(ips, ",");
      strcat(ips, f);
    }
  }
  p->allowed_ips = ips;
  return 0;
}

static int usage(const char* argv0) {
  fprintf(stderr,
          "usage: %s --key-file FILE --address IP[,IP] [--listen-port N] [--port 80]\n"
          "          --peer PUBKEY,ENDPOINT|-,ALLOWEDIP[,...][,name=NAME] [--peer ...]\n",
          argv0);
  return 2;
}

int main(int argc, char** argv) {
  const char* key_file = NULL;
  const char* addresses = NULL;
  int listen_port = 0, port = 80, npeers = 0;
  gatehouse_peer peers[MAX_PEERS];
  static char ips[MAX_PEERS][1024];
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--key-file") == 0) {
      key_file = argv[i + 1];
    } else if (strcmp(argv[i], "--address") == 0) {
      addresses = argv[i + 1];
    } else if (strcmp(argv[i], "--listen-port") == 0) {
      listen_port = atoi(argv[i + 1]);
    } else if (strcmp(argv[i], "--port") == 0) {
      port = atoi(argv[i + 1]);
    } else if (strcmp(argv[i], "--peer") == 0 && npeers < MAX_PEERS) {
      if (parsePeer(argv[i + 1], &peers[npeers], ips[npeers], sizeof ips[npeers]) != 0) {
        return usage(argv[0]);
      }
      ++npeers;
    } else {
      return usage(argv[0]);
    }
  }
  if (key_file == NULL || addresses == NULL) return usage(argv[0]);
  const char* key = readKeyFile(key_file);
  if (key == NULL) {
    fprintf(stderr, "cannot read key file %s\n", key_file);
    return 1;
  }

  gatehouse_options o;
  gatehouse_options_init(&o);
  o.private_key = key;
  o.addresses = addresses;
  o.listen_port = (uint16_t)listen_port;
  o.hostname = "whoami-c";
  gatehouse_node* node = NULL;
  int rc = gatehouse_node_new(&o, &node);
  if (rc != GATEHOUSE_OK) {
    fprintf(stderr, "node_new: %s\n", gatehouse_strerror(rc));
    return 1;
  }
  for (int i = 0; i < npeers && rc == GATEHOUSE_OK; ++i)
    rc = gatehouse_node_add_peer(node, &peers[i]);
  if (rc == GATEHOUSE_OK) rc = gatehouse_node_start(node);
  int listener = rc == GATEHOUSE_OK ? gatehouse_listen(node, "tcp", port) : rc;
  if (listener < 0) {
    fprintf(stderr, "whoami_c: %s\n", gatehouse_errmsg(node));
    gatehouse_node_free(node);
    return 1;
  }
  signal(SIGINT, onSignal);
  signal(SIGTERM, onSignal);
  signal(SIGPIPE, SIG_IGN);
  fprintf(stderr, "whoami_c: %s listening on port %d (UDP %d)\n", gatehouse_version_string(), port,
          gatehouse_node_listen_port(node));

  while (!g_stop) {
    struct conn* c = calloc(1, sizeof *c);
    if (c == NULL) break;
    c->node = node;
    int fd = gatehouse_accept(node, listener, 500, c->remote, sizeof c->remote);
    if (fd < 0) {
      free(c);
      if (fd == GATEHOUSE_ETIMEDOUT) continue;
      fprintf(stderr, "accept: %s\n", gatehouse_errmsg(node));
      break;
    }
    c->fd = fd;
    pthread_t t;
    __atomic_add_fetch(&g_active, 1, __ATOMIC_SEQ_CST);
    if (pthread_create(&t, NULL, serve, c) != 0) {
      __atomic_sub_fetch(&g_active, 1, __ATOMIC_SEQ_CST);
      close(fd);
      free(c);
      continue;
    }
    pthread_detach(t);
  }
  fprintf(stderr, "whoami_c: stopping\n");
  gatehouse_node_close(node); /* in-flight connections read ECONNRESET */
  /* Connection threads still use the node (whois, errmsg): let them finish before freeing it. */
  while (__atomic_load_n(&g_active, __ATOMIC_SEQ_CST) > 0) usleep(20000);
  gatehouse_node_free(node);
  return 0;
}
