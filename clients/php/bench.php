<?php
/**
 * RawTrigger::fire() against the bare fsockopen() + fwrite() + fclose() loop it replaces, on the
 * same bytes, interleaved call by call so both see the same machine. Run:
 *
 *   php clients/php/bench.php http://127.0.0.1:9099/jobs/noop [--n 2000] [--rounds 3] [--json]
 *
 * against any receiver: `rawtrigger serve --concurrency 0`, or a sink that only reads, e.g.
 *   node -e "require('net').createServer(c=>{c.resume();c.on('end',()=>c.end());c.on('error',()=>{})}).listen(9099,'127.0.0.1')"
 *
 * Prints p50 and p99 of each per round, and the median over rounds of the p50 ratio (client / bare).
 * fire() builds its request (JSON, headers) on every call; the bare loop writes prebuilt bytes.
 */

declare(strict_types=1);
require __DIR__ . '/RawTrigger.php';

$url = null;
$n = 2000;
$rounds = 3;
$json = false;
for ($i = 1; $i < $argc; $i++) {
    $a = $argv[$i];
    if ($a === '--n') $n = (int) $argv[++$i];
    elseif ($a === '--rounds') $rounds = (int) $argv[++$i];
    elseif ($a === '--json') $json = true;
    elseif ($url === null) $url = $a;
    else { fwrite(STDERR, "unexpected argument $a\n"); exit(2); }
}
if ($url === null || $n < 1 || $rounds < 1) {
    fwrite(STDERR, "usage: php bench.php <url> [--n 2000] [--rounds 3] [--json]\n");
    exit(2);
}
$u = parse_url($url);
$host = $u['host'];
$port = $u['port'] ?? 80;
$body = ['subject' => 'Hi {{name}}', 'text' => 'Hello', 'recipients' => ['a@example.org']];
$request = RawTrigger::build($url, $body, ['id' => 'bench']);

function quantile(array $ns, float $q): float
{
    sort($ns);
    return $ns[(int) floor($q * (count($ns) - 1))] / 1000; // µs
}

$results = [];
for ($r = 0; $r < $rounds; $r++) {
    $bare = [];
    $client = [];
    for ($i = 0; $i < $n; $i++) {
        $t = hrtime(true);
        $fp = fsockopen($host, $port, $errno, $errstr, 5.0);
        if ($fp === false) { fwrite(STDERR, "fsockopen failed: $errstr\n"); exit(1); }
        fwrite($fp, $request);
        fclose($fp);
        $bare[] = hrtime(true) - $t;
        $t = hrtime(true);
        RawTrigger::fire($url, $body, ['id' => 'bench']);
        $client[] = hrtime(true) - $t;
        if (!$json && $i % 200 === 0) fwrite(STDERR, sprintf("\rround %d/%d: %d/%d", $r + 1, $rounds, $i, $n));
    }
    $row = [
        'bare_p50_us' => quantile($bare, 0.5), 'bare_p99_us' => quantile($bare, 0.99),
        'client_p50_us' => quantile($client, 0.5), 'client_p99_us' => quantile($client, 0.99),
    ];
    $row['p50_ratio'] = $row['client_p50_us'] / $row['bare_p50_us'];
    $results[] = $row;
}
$ratios = array_column($results, 'p50_ratio');
sort($ratios);
$median = $ratios[intdiv(count($ratios), 2)];
if ($json) {
    echo json_encode(['url' => $url, 'n' => $n, 'rounds' => $results, 'median_p50_ratio' => $median]), "\n";
    exit(0);
}
fwrite(STDERR, "\r\033[K");
printf("%d calls per round, %s\n", $n, $url);
foreach ($results as $i => $row) {
    printf("round %d: bare fsockopen p50 %.1f µs p99 %.1f µs | RawTrigger::fire p50 %.1f µs p99 %.1f µs | p50 ratio %.2f×\n",
        $i + 1, $row['bare_p50_us'], $row['bare_p99_us'], $row['client_p50_us'], $row['client_p99_us'], $row['p50_ratio']);
}
printf("median p50 ratio (client / bare): %.2f×\n", $median);
