<?php
// The PHP side of scripts/bench-trigger.ts: the classic fire-and-forget trigger,
// fsockopen + fwrite + fclose, timed with hrtime(true) around the three calls.
// Run by the benchmark (never needs running by hand):
//   php scripts/bench/fsockopen.php HOST PORT WARMUP ITERATIONS BASE64_REQUEST [PAUSE_MS]
// PAUSE_MS: an untimed pause before each call (default 0), as the Node side's --pause-ms.
// Prints one JSON object:
//   {"durations_ns": [...], "errors": {"<errno>" or "fwrite": count}, "calls": N, "cpu_us_per_call": F}.
// The request bytes come from rawtrigger's buildRequest(), so both sides send identical bytes.

if ($argc !== 6 && $argc !== 7) {
    fwrite(STDERR, "usage: php fsockopen.php HOST PORT WARMUP ITERATIONS BASE64_REQUEST [PAUSE_MS]\n");
    exit(2);
}
$host = $argv[1];
$port = (int) $argv[2];
$warmup = (int) $argv[3];
$iterations = (int) $argv[4];
$request = base64_decode($argv[5], true);
$pauseUs = (int) round(((float) ($argv[6] ?? '0')) * 1000);
if ($request === false) {
    fwrite(STDERR, "fsockopen.php: the request is not valid base64\n");
    exit(2);
}

const CONNECT_TIMEOUT_S = 5; // same as rawtrigger's connect timeout

/** CPU time (user + system) of this process so far, µs. */
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
    $fp = @fsockopen($host, $port, $errno, $errstr, CONNECT_TIMEOUT_S);
    if ($fp === false) {
        $errors[(string) $errno] = ($errors[(string) $errno] ?? 0) + 1;
        continue;
    }
    $written = fwrite($fp, $request);
    fclose($fp);
    $t1 = hrtime(true);
    if ($written !== strlen($request)) {
        $errors['fwrite'] = ($errors['fwrite'] ?? 0) + 1;
        continue;
    }
    if ($i >= $warmup) {
        $durations[] = $t1 - $t0;
    }
}
$cpuUsPerCall = (cpu_us() - $cpuStart) / $iterations;
echo json_encode([
    'durations_ns' => $durations,
    'errors' => (object) $errors,
    'calls' => $total,
    'cpu_us_per_call' => $cpuUsPerCall,
]), "\n";
