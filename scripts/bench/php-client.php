<?php
// The PHP client side of scripts/bench-trigger.ts: RawTrigger::fire() from clients/php, timed
// with hrtime(true) around each call, as fsockopen.php times the bare loop it replaces.
// Run by the benchmark (never needs running by hand):
//   php scripts/bench/php-client.php URL WARMUP ITERATIONS BASE64_JSON_BODY [PAUSE_MS]
// fire() builds its request (JSON encoding, headers) on every call, as trigger() does in Node.
// Prints the same JSON object as fsockopen.php.

declare(strict_types=1);
require __DIR__ . '/../../clients/php/RawTrigger.php';

if ($argc !== 5 && $argc !== 6) {
    fwrite(STDERR, "usage: php php-client.php URL WARMUP ITERATIONS BASE64_JSON_BODY [PAUSE_MS]\n");
    exit(2);
}
$url = $argv[1];
$warmup = (int) $argv[2];
$iterations = (int) $argv[3];
$body = json_decode((string) base64_decode($argv[4], true), true);
$pauseUs = (int) round(((float) ($argv[5] ?? '0')) * 1000);

function cpu_us(): float
{
    $r = getrusage();
    return ($r['ru_utime.tv_sec'] + $r['ru_stime.tv_sec']) * 1e6 + $r['ru_utime.tv_usec'] + $r['ru_stime.tv_usec'];
}

$durations = [];
$errors = [];
$total = $warmup + $iterations;
$cpuStart = cpu_us();
for ($i = 0; $i < $total; $i++) {
    if ($i === $warmup) {
        $cpuStart = cpu_us();
    }
    if ($pauseUs > 0) {
        usleep($pauseUs);
    }
    $t0 = hrtime(true);
    try {
        RawTrigger::fire($url, $body);
    } catch (RawTriggerException $e) {
        $key = $e->getCode() !== 0 ? (string) $e->getCode() : $e->getErrorCode();
        $errors[$key] = ($errors[$key] ?? 0) + 1;
        continue;
    }
    $t1 = hrtime(true);
    if ($i >= $warmup) {
        $durations[] = $t1 - $t0;
    }
}
echo json_encode([
    'durations_ns' => $durations,
    'errors' => (object) $errors,
    'calls' => $total,
    'cpu_us_per_call' => (cpu_us() - $cpuStart) / $iterations,
]), "\n";
