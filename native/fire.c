// The trigger's synchronous fast path, as PHP's fsockopen() runs it: socket(), a non-blocking
// connect() waited for with poll(), write(), close(): the same five system calls, with no
// event-loop turn between them. Used by src/net/native-fire.ts for plain-HTTP triggers to a
// loopback address or a Unix-domain socket only, where the handshake is the kernel's own work and
// ends within microseconds; everything else (and every case this file declines) takes node:net.
//
// fire(family, address, port, request, connectBudgetMs) → [state, value, written, connectNs]
//   family 4 or 6 (address an IP literal, port a number), or 0 (address a socket path)
//   state DONE     (0): every byte written, the socket closed (its FIN follows the last byte)
//   state DECLINED (1): not connected within the budget; the socket is closed, nothing was sent
//   state PARTIAL  (2): connected, `written` bytes sent, the rest would block: `value` is the
//                       open, non-blocking descriptor, for node:net to finish the write and close
//   state FAILED   (3): `value` is the errno, `written` the bytes sent before it; the socket is closed
//   connectNs: from socket() to connected; 0 when it was not, so a FAILED with 0 failed to connect
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <node_api.h>

enum { DONE = 0, DECLINED = 1, PARTIAL = 2, FAILED = 3 };

// Linux has both flags on socket() and MSG_NOSIGNAL; macOS and the BSDs without them set the same
// with fcntl() and SO_NOSIGPIPE.
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

static int open_socket(int domain) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  return socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
#else
  int fd = socket(domain, SOCK_STREAM, 0);
  if (fd < 0) return fd;
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
#ifdef SO_NOSIGPIPE
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on);
#endif
  return fd;
#endif
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static napi_value result(napi_env env, int state, int value, int64_t written, int64_t connect_ns) {
  napi_value array, v;
  napi_create_array_with_length(env, 4, &array);
  napi_create_int32(env, state, &v);
  napi_set_element(env, array, 0, v);
  napi_create_int32(env, value, &v);
  napi_set_element(env, array, 1, v);
  napi_create_int64(env, written, &v);
  napi_set_element(env, array, 2, v);
  napi_create_int64(env, connect_ns, &v);
  napi_set_element(env, array, 3, v);
  return array;
}

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

// Waits for the connect to end, at most budget_ms: 1 when connected, 0 when the budget ran out,
// -errno when it failed.
static int wait_connected(int fd, int budget_ms) {
  struct pollfd p = { .fd = fd, .events = POLLOUT };
  int n;
  do n = poll(&p, 1, budget_ms); while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  if (n == 0) return 0;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
  return err == 0 ? 1 : -err;
}

static napi_value fire(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) {
    return throw_type(env, "fire(family, address, port, request, connectBudgetMs)");
  }
  int32_t family, port, budget_ms;
  char address[128];
  size_t address_len;
  void *data;
  size_t length;
  bool is_buffer = false;
  if (napi_get_value_int32(env, argv[0], &family) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], address, sizeof address, &address_len) != napi_ok ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok ||
      napi_is_buffer(env, argv[3], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[3], &data, &length) != napi_ok ||
      napi_get_value_int32(env, argv[4], &budget_ms) != napi_ok) {
    return throw_type(env, "fire(family: 0|4|6, address: string, port: number, request: Buffer, connectBudgetMs: number)");
  }

  struct sockaddr_storage ss;
  socklen_t ss_len;
  memset(&ss, 0, sizeof ss);
  if (family == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, address, &a->sin_addr) != 1) return throw_type(env, "not an IPv4 address");
    ss_len = sizeof *a;
  } else if (family == 6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, address, &a->sin6_addr) != 1) return throw_type(env, "not an IPv6 address");
    ss_len = sizeof *a;
  } else if (family == 0) {
    struct sockaddr_un *a = (struct sockaddr_un *)&ss;
    if (address_len == 0 || address_len >= sizeof a->sun_path) return throw_type(env, "socket path too long");
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path, address, address_len + 1);
    ss_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + address_len + 1);
  } else {
    return throw_type(env, "family must be 0, 4 or 6");
  }

  int64_t start = now_ns();
  int fd = open_socket(ss.ss_family);
  if (fd < 0) return result(env, FAILED, errno, 0, 0);
  if (connect(fd, (struct sockaddr *)&ss, ss_len) != 0) {
    int err = errno;
    if (err != EINPROGRESS && err != EINTR) {
      close(fd);
      return result(env, FAILED, err, 0, 0);
    }
    int w = wait_connected(fd, budget_ms);
    if (w <= 0) {
      close(fd);
      return w == 0 ? result(env, DECLINED, 0, 0, 0) : result(env, FAILED, -w, 0, 0);
    }
  }
  int64_t connect_ns = now_ns() - start;

  size_t written = 0;
  while (written < length) {
    ssize_t n = send(fd, (const char *)data + written, length - written, MSG_NOSIGNAL);
    if (n >= 0) {
      written += (size_t)n;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return result(env, PARTIAL, fd, (int64_t)written, connect_ns);
    int err = errno;
    close(fd);
    return result(env, FAILED, err, (int64_t)written, connect_ns);
  }
  close(fd);
  return result(env, DONE, 0, (int64_t)written, connect_ns);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  if (napi_create_function(env, "fire", NAPI_AUTO_LENGTH, fire, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "fire", fn) != napi_ok) return NULL;
  return exports;
}
