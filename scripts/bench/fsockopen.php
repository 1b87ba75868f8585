<?php
// The PHP side of scripts/bench-trigger.ts, timed with hrtime(true) around each call:
// - bare:   the classic fire-and-forget trigger, fsockopen + fwrite + fclose, writing the request
//           bytes built by rawtrigger's buildRequest() (so PHP and trigger() send identical bytes);
//           TARGET is a host name (TCP to PORT) or unix:///path (PORT -1);
// - client: clients/php RawTrigger::fire(TARGET, body), which builds its request on every call,
//           as trigger() does; TARGET is the URL and PAYLOAD the JSON body; PORT is unused. Each
//           fire() is paired with one bare call to the same host and port on the request fire()
//           built (the order alternating), so the two loops share the machine's moment and the
//           ratio of their p50s is not the drift between two runs; those go to baseline_ns.
// Run by the benchmark and by the load test's PHP phase (never needs running by hand):
//   php scripts/bench/fsockopen.php bare|client TARGET PORT WARMUP ITERATIONS BASE64_PAYLOAD [PAUSE_MS]
// PAUSE_MS: an untimed pause before each call (default 0), as the Node side's --pause-ms.
// Prints one JSON object:
//   {"durations_ns": [...], "baseline_ns": [...] (client only), "errors": {"<errno>", "fwrite" or an RT_ERR_ code: count}, "calls": N,
//    "cpu_us_per_call": F, "seconds": first call to last (pauses included)}.

declare(strict_types=1);
require __DIR__ . '/../../clients/php/RawTrigger.php';

if ($argc !== 7 && $argc !== 8) {
    fwrite(STDERR, "usage: php fsockopen.php bare|client TARGET PORT WARMUP ITERATIONS BASE64_PAYLOAD [PAUSE_MS]\n");
    exit(2);
}
[$mode, $target, $port, $warmup, $iterations] = [$argv[1], $argv[2], (int) $argv[3], (int) $argv[4], (int) $argv[5]];
$payload = base64_decode($argv[6], true);
$pauseUs = (int) round(((float) ($argv[7] ?? '0')) * 1000);
if ($payload === false || ($mode !== 'bare' && $mode !== 'client')) {
    fwrite(STDERR, "fsockopen.php: the mode must be bare or client, the payload valid base64\n");
    exit(2);
}

const CONNECT_TIMEOUT_S = 5; // same as rawtrigger's connect timeout

/** One bare trigger: null when written, else the error's key. */
function bare(string $host, int $port, string $request): ?string
{
    $fp = @fsockopen($host, $port, $errno, $errstr, CONNECT_TIMEOUT_S);
    if ($fp === false) {
        return (string) $errno;
    }
    $written = fwrite($fp, $request);
    fclose($fp);
    return $written === strlen($request) ? null : 'fwrite';
}

/** One RawTrigger::fire(): null when written, else the error's key. */
function client(string $url, $body): ?string
{
    try {
        RawTrigger::fire($url, $body);
        return null;
    } catch (RawTriggerException $e) {
        return $e->getCode() !== 0 ? (string) $e->getCode() : $e->getErrorCode();
    }
}

/** One bare call, its duration added to $into when $keep and it succeeded; the error's key or null. */
function timed_bare(string $host, int $port, string $request, bool $keep, array &$into): ?string
{
    $t0 = hrtime(true);
    $error = bare($host, $port, $request);
    $t1 = hrtime(true);
    if ($error === null && $keep) {
        $into[] = $t1 - $t0;
    }
    return $error;
}

/** CPU time (user + system) of this process so far, µs. */
function cpu_us(): float
{
    $r = getrusage();
    return ($r['ru_utime.tv_sec'] + $r['ru_stime.tv_sec']) * 1e6 + $r['ru_utime.tv_usec'] + $r['ru_stime.tv_usec'];
}

$body = $mode === 'client' ? json_decode($payload, true) : null;
if ($mode === 'client') {
    // The bare half of each pair: the bytes fire() writes, to where it writes them.
    $parts = parse_url($target);
    $bareHost = $parts['host'];
    $barePort = $parts['port'] ?? 80;
    $bareRequest = RawTrigger::build($target, $body);
}
$baseline = [];
$clientCpu = 0.0; // client mode: the CPU of the fire() calls alone, without their bare pairs
$durations = [];
$errors = [];
$total = $warmup + $iterations;
$cpuStart = cpu_us();
$start = hrtime(true);
for ($i = 0; $i < $total; $i++) {
    if ($i === $warmup) {
        $cpuStart = cpu_us();
    }
    if ($pauseUs > 0) {
        usleep($pauseUs);
    }
    if ($mode === 'client' && $i % 2 === 1) {
        $bareError = timed_bare($bareHost, $barePort, $bareRequest, $i >= $warmup, $baseline);
    }
    $c0 = $mode === 'client' ? cpu_us() : 0.0;
    $t0 = hrtime(true);
    $error = $mode === 'bare' ? bare($target, $port, $payload) : client($target, $body);
    $t1 = hrtime(true);
    if ($mode === 'client' && $i >= $warmup) {
        $clientCpu += cpu_us() - $c0;
    }
    if ($error !== null) {
        $errors[$error] = ($errors[$error] ?? 0) + 1;
    } elseif ($i >= $warmup) {
        $durations[] = $t1 - $t0;
    }
    if ($mode === 'client' && $i % 2 === 0) {
        $bareError = timed_bare($bareHost, $barePort, $bareRequest, $i >= $warmup, $baseline);
    }
    if ($mode === 'client' && $bareError !== null) {
        $errors[$bareError] = ($errors[$bareError] ?? 0) + 1;
    }
}
echo json_encode([
    'durations_ns' => $durations,
    'baseline_ns' => $baseline,
    'errors' => (object) $errors,
    'calls' => $mode === 'client' ? 2 * $total : $total,
    'cpu_us_per_call' => ($mode === 'client' ? $clientCpu : cpu_us() - $cpuStart) / $iterations,
    'seconds' => (hrtime(true) - $start) / 1e9,
]), "\n";
