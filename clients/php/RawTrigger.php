<?php
/**
 * rawtrigger's PHP client: the fsockopen() trigger done right, in one file, no dependency.
 *
 *   require __DIR__ . '/RawTrigger.php';
 *   RawTrigger::fire('http://127.0.0.1:8080/jobs/email', $job, ['id' => 'campaign-42']);
 *
 * Connects, writes one HTTP/1.1 request with `Connection: close`, closes without reading the
 * answer, and returns the bytes written. The request is built as rawtrigger's own trigger() builds
 * it (src/net/request-bytes.ts): `Host` with the port only when it is not the default, IPv6 in
 * brackets, `Content-Length` in bytes, header values checked for CR, LF, NUL and other control
 * characters, the framing headers refused from the caller. With a secret it is signed per
 * Standard Webhooks as src/net/sign.ts does. PHP 7.4 or newer; https needs ext-openssl.
 *
 * @license MIT
 */

declare(strict_types=1);

/**
 * Every error RawTrigger throws. `getErrorCode()` is the stable `RT_ERR_*` code, the same as the
 * Node client's for the same problem; the OS error number, when there is one, is `getCode()`.
 */
class RawTriggerException extends RuntimeException
{
    /** @var string */
    private $errorCode;

    public function __construct(string $errorCode, string $message, int $osErrno = 0, ?Throwable $previous = null)
    {
        parent::__construct($message, $osErrno, $previous);
        $this->errorCode = $errorCode;
    }

    /** `RT_ERR_INVALID_URL`, `RT_ERR_INVALID_HEADER_VALUE`, `RT_ERR_CONNECT`, `RT_ERR_WRITE`, … */
    public function getErrorCode(): string
    {
        return $this->errorCode;
    }
}

final class RawTrigger
{
    /** Sent unless the caller sets its own `User-Agent`. */
    const USER_AGENT = 'rawtrigger-php/0.1';
    /** Seconds for the TCP connect (and the TLS handshake for https), and for each write. */
    const TIMEOUT_S = 5.0;

    // RFC 9110 §5.6.2: token = 1*tchar
    const TOKEN_RE = '/^[!#$%&\'*+\-.^_`|~0-9A-Za-z]+$/';
    // RFC 9110 §5.5: VCHAR, obs-text, SP and HTAB. CR, LF, NUL, other controls and DEL are refused.
    const BAD_VALUE_RE = '/[^\t\x20-\x7e\x80-\xff]/';
    // Standard Webhooks message ids: visible ASCII.
    const MSG_ID_RE = '/^[\x21-\x7e]{1,255}$/';
    const FORBIDDEN = ['content-length' => true, 'host' => true, 'transfer-encoding' => true, 'connection' => true];

    /** @var array<string, array{0: string, 1: string, 2: string, 3: string, 4: string}> parsed URLs */
    private static $targets = [];

    /**
     * Fires one request and hangs up without reading the answer.
     *
     * @param string $url http:// or https://; with the `socket` option it gives only the path and `Host`
     * @param string|array|object|null $body a string is sent as is (set a Content-Type header); an
     *   array or object is sent as JSON with `Content-Type: application/json`; null sends no body
     * @param array $options
     *   - `secret`  (string) sign per Standard Webhooks: `whsec_` + base64, as `rawtrigger secret` prints
     *   - `headers` (array)  `['Name' => 'value']`; a list value repeats the field
     *   - `timeout` (float)  seconds for the connect and for each write (default 5)
     *   - `id`      (string) the `webhook-id`: the receiver's job id and idempotency key (default:
     *                        the `webhook-id` header, else a new one when signing, else none)
     *   - `method`  (string) default POST with a body, else GET
     *   - `socket`  (string) a Unix-domain socket path to connect to instead of the URL's host
     *   - `tls`     (array)  SSL context options for https, e.g. `['cafile' => '/etc/ssl/mine.pem']`
     * @return int the bytes written: head and body
     * @throws RawTriggerException bad input (before connecting), connect or write failure
     */
    public static function fire(string $url, $body = null, array $options = []): int
    {
        $timeout = self::timeout($options);
        $request = self::build($url, $body, $options);
        $target = self::target($url);
        $socket = isset($options['socket']) ? self::socketPath($options['socket']) : null;
        $where = $socket === null ? $target[2] . ':' . $target[3] : 'unix:' . $socket;
        $address = $socket === null ? ($target[0] ? 'ssl://' : 'tcp://') . $where : 'unix://' . $socket;
        if ($socket !== null && $target[0]) {
            throw new RawTriggerException('RT_ERR_INVALID_OPTION', 'https over a Unix socket is not supported by the PHP client; use http://localhost/…');
        }
        $errno = 0;
        $errstr = '';
        $fp = $target[0]
            ? @stream_socket_client($address, $errno, $errstr, $timeout, STREAM_CLIENT_CONNECT, stream_context_create(['ssl' => self::tlsOptions($options, $target)]))
            : @stream_socket_client($address, $errno, $errstr, $timeout);
        if ($fp === false) {
            if ($errstr === '') $errstr = (string) (error_get_last()['message'] ?? 'unknown error');
            throw new RawTriggerException('RT_ERR_CONNECT', "Connect failed ($where): $errstr", $errno);
        }
        stream_set_timeout($fp, (int) $timeout, (int) (fmod($timeout, 1.0) * 1e6));
        $length = strlen($request);
        $written = 0;
        while ($written < $length) {
            $n = @fwrite($fp, $written === 0 ? $request : substr($request, $written));
            if ($n === false || $n === 0) {
                $timedOut = stream_get_meta_data($fp)['timed_out'];
                fclose($fp);
                $why = $timedOut ? "no progress within {$timeout} s" : (string) (error_get_last()['message'] ?? 'connection closed');
                throw new RawTriggerException('RT_ERR_WRITE', "Write failed ($where) after $written of $length bytes: $why");
            }
            $written += $n;
        }
        // No read: the FIN follows the last byte, and the receiver's answer goes to nobody.
        if (!$target[0]) @stream_socket_shutdown($fp, STREAM_SHUT_WR);
        fclose($fp);
        return $written;
    }

    /**
     * The exact bytes fire() writes: request line, `Host`, `Connection: close`, `Content-Length`,
     * `Content-Type` for JSON bodies, `User-Agent`, the signature headers, then the caller's headers.
     *
     * @param string|array|object|null $body
     * @throws RawTriggerException for any invalid input
     */
    public static function build(string $url, $body = null, array $options = []): string
    {
        $target = self::target($url);
        $json = false;
        if ($body === null) {
            $bytes = null;
        } elseif (is_string($body)) {
            $bytes = $body;
        } elseif (is_array($body) || is_object($body)) {
            try {
                $bytes = json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_LINE_TERMINATORS | JSON_THROW_ON_ERROR);
            } catch (JsonException $e) {
                throw new RawTriggerException('RT_ERR_INVALID_BODY', 'body cannot be encoded as JSON: ' . $e->getMessage(), 0, $e);
            }
            $json = true;
        } else {
            throw new RawTriggerException('RT_ERR_INVALID_BODY', 'body must be a string, an array or an object (sent as JSON), or null');
        }
        $method = isset($options['method']) ? $options['method'] : ($bytes === null ? 'GET' : 'POST');
        if (!is_string($method) || !preg_match(self::TOKEN_RE, $method)) {
            throw new RawTriggerException('RT_ERR_INVALID_METHOD', 'method is not a token: ' . json_encode($method));
        }

        $custom = '';
        $seen = [];
        $givenId = null;
        $headers = isset($options['headers']) ? $options['headers'] : [];
        if (!is_array($headers)) throw new RawTriggerException('RT_ERR_INVALID_HEADER_NAME', 'headers must be an array of name => value');
        foreach ($headers as $name => $value) {
            $name = (string) $name;
            if (!preg_match(self::TOKEN_RE, $name)) {
                throw new RawTriggerException('RT_ERR_INVALID_HEADER_NAME', 'header name is not a token: ' . json_encode($name));
            }
            $lower = strtolower($name);
            if (isset(self::FORBIDDEN[$lower])) {
                throw new RawTriggerException('RT_ERR_FORBIDDEN_HEADER', "header $name is set by rawtrigger and cannot be given");
            }
            $seen[$lower] = true;
            foreach (is_array($value) ? $value : [$value] as $v) {
                if (!is_string($v) && !is_int($v) && !is_float($v)) {
                    throw new RawTriggerException('RT_ERR_INVALID_HEADER_VALUE', "header $name must be a string, a number or a list of strings");
                }
                $v = (string) $v;
                if (preg_match(self::BAD_VALUE_RE, $v)) {
                    throw new RawTriggerException('RT_ERR_INVALID_HEADER_VALUE', "header $name holds CR, LF, NUL or another control character");
                }
                if ($lower === 'webhook-id') {
                    if ($givenId !== null || is_array($value)) throw new RawTriggerException('RT_ERR_INVALID_HEADER_VALUE', 'webhook-id must be one value');
                    $givenId = $v;
                }
                $custom .= "$name: $v\r\n";
            }
        }
        $id = isset($options['id']) ? (string) $options['id'] : null;
        if ($id !== null) {
            if ($givenId !== null && $givenId !== $id) throw new RawTriggerException('RT_ERR_INVALID_OPTION', 'the id option and the webhook-id header differ');
            if (!preg_match(self::MSG_ID_RE, $id)) throw new RawTriggerException('RT_ERR_INVALID_OPTION', 'id must be 1-255 visible ASCII characters (got ' . json_encode($id) . ')');
        }

        $head = "$method {$target[4]} HTTP/1.1\r\nHost: {$target[1]}\r\nConnection: close\r\n";
        if ($bytes !== null || $method === 'POST' || $method === 'PUT' || $method === 'PATCH') {
            // RFC 9110 §8.6: a user agent SHOULD send Content-Length: 0 on a POST without content.
            $head .= 'Content-Length: ' . ($bytes === null ? 0 : strlen($bytes)) . "\r\n";
        }
        if ($json && !isset($seen['content-type'])) $head .= "Content-Type: application/json\r\n";
        if (!isset($seen['user-agent'])) $head .= 'User-Agent: ' . self::USER_AGENT . "\r\n";
        $msgId = $givenId !== null ? $givenId : $id;
        if (isset($options['secret'])) {
            if ($msgId === null) $msgId = self::newId();
            $ts = time();
            if ($givenId === null) $head .= "webhook-id: $msgId\r\n";
            $head .= "webhook-timestamp: $ts\r\nwebhook-signature: " . self::sign($options['secret'], $msgId, $ts, $bytes === null ? '' : $bytes) . "\r\n";
        } elseif ($msgId !== null && $givenId === null) {
            $head .= "webhook-id: $msgId\r\n";
        }
        return $head . $custom . "\r\n" . ($bytes === null ? '' : $bytes);
    }

    /**
     * `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` per Standard Webhooks; the key is the
     * base64-decoded secret after its `whsec_` prefix.
     *
     * @throws RawTriggerException RT_ERR_INVALID_SECRET for a secret that is not (whsec_) base64
     */
    public static function sign(string $secret, string $id, int $timestamp, string $body): string
    {
        $b64 = strncmp($secret, 'whsec_', 6) === 0 ? substr($secret, 6) : $secret;
        $key = preg_match('/^[A-Za-z0-9+\/]+={0,2}$/', $b64) ? base64_decode($b64, true) : false;
        if ($key === false || $key === '') {
            throw new RawTriggerException('RT_ERR_INVALID_SECRET', 'secret must be "whsec_" followed by base64 (see `rawtrigger secret`)');
        }
        return 'v1,' . base64_encode(hash_hmac('sha256', "$id.$timestamp.$body", $key, true));
    }

    /** A new message id, `msg_` + 32 hex digits: it fits the receiver's job ids, so it is the job's id. */
    public static function newId(): string
    {
        return 'msg_' . bin2hex(random_bytes(16));
    }

    /**
     * [tls, Host value, connect host (brackets for IPv6), port, request target], cached per URL.
     *
     * @return array{0: bool, 1: string, 2: string, 3: int, 4: string}
     */
    private static function target(string $url): array
    {
        if (isset(self::$targets[$url])) return self::$targets[$url];
        $u = parse_url($url);
        if ($u === false || !isset($u['scheme'], $u['host']) || $u['host'] === '') {
            throw new RawTriggerException('RT_ERR_INVALID_URL', 'invalid URL: ' . json_encode($url));
        }
        $scheme = strtolower($u['scheme']);
        if ($scheme !== 'http' && $scheme !== 'https') {
            throw new RawTriggerException('RT_ERR_INVALID_URL', "URL scheme must be http or https (got $scheme:)");
        }
        if (isset($u['user']) || isset($u['pass'])) {
            throw new RawTriggerException('RT_ERR_INVALID_URL', 'credentials in the URL are not sent; pass an Authorization header');
        }
        $tls = $scheme === 'https';
        $host = strtolower($u['host']);
        $ipv6 = $host[0] === '[';
        if ($ipv6 ? !filter_var(substr($host, 1, -1), FILTER_VALIDATE_IP, FILTER_FLAG_IPV6) : !preg_match('/^[a-z0-9.\-_]+$/', $host)) {
            throw new RawTriggerException('RT_ERR_INVALID_URL', 'invalid host in URL: ' . json_encode($u['host']));
        }
        $default = $tls ? 443 : 80;
        $port = isset($u['port']) ? (int) $u['port'] : $default;
        // Percent-encode what may not stand in a request line (as the WHATWG URL parser does).
        $path = self::encode(isset($u['path']) && $u['path'] !== '' ? $u['path'] : '/');
        if (isset($u['query'])) $path .= '?' . self::encode($u['query']);
        if (count(self::$targets) >= 64) self::$targets = [];
        return self::$targets[$url] = [$tls, $port === $default ? $host : "$host:$port", $host, $port, $path];
    }

    private static function encode(string $part): string
    {
        return preg_replace_callback('/[^\x21-\x7e]|["<>`{}]/', function (array $m): string {
            return '%' . strtoupper(bin2hex($m[0]));
        }, $part);
    }

    /** @param mixed $value */
    private static function socketPath($value): string
    {
        if (!is_string($value) || $value === '' || strpos($value, "\0") !== false) {
            throw new RawTriggerException('RT_ERR_INVALID_OPTION', 'socket must be a non-empty path without NUL bytes');
        }
        return $value;
    }

    private static function timeout(array $options): float
    {
        if (!isset($options['timeout'])) return self::TIMEOUT_S;
        $t = $options['timeout'];
        if ((!is_int($t) && !is_float($t)) || $t <= 0) {
            throw new RawTriggerException('RT_ERR_INVALID_OPTION', 'timeout must be a positive number of seconds (got ' . json_encode($t) . ')');
        }
        return (float) $t;
    }

    /** SNI and peer-name checks for host names; IP literals are checked against the certificate's IP SANs. */
    private static function tlsOptions(array $options, array $target): array
    {
        $tls = isset($options['tls']) && is_array($options['tls']) ? $options['tls'] : [];
        $name = $target[2][0] === '[' ? substr($target[2], 1, -1) : $target[2];
        return $tls + ['peer_name' => $name, 'SNI_enabled' => filter_var($name, FILTER_VALIDATE_IP) === false];
    }
}
