<?php
// Drives clients/php/RawTrigger.php for test/php-client.test.ts: one JSON command (or a list) on
// stdin, one JSON line of results on stdout. Errors are results too: { ok: false, code, message, errno }.
declare(strict_types=1);
require __DIR__ . '/../../clients/php/RawTrigger.php';

function run(array $cmd): array
{
    $options = $cmd['options'] ?? [];
    $body = $cmd['body'] ?? null;
    try {
        switch ($cmd['op']) {
            case 'build':
                return ['ok' => true, 'request' => base64_encode(RawTrigger::build($cmd['url'], $body, $options))];
            case 'fire':
                return ['ok' => true, 'bytes' => RawTrigger::fire($cmd['url'], $body, $options)];
            case 'sign':
                return ['ok' => true, 'signature' => RawTrigger::sign($cmd['secret'], $cmd['id'], $cmd['timestamp'], $cmd['payload'])];
            case 'many':
                // n triggers from this one process, ids prefix + i, the body's "i" set per trigger.
                $bytes = 0;
                $start = hrtime(true);
                for ($i = 0; $i < $cmd['n']; $i++) {
                    $bytes += RawTrigger::fire($cmd['url'], ['i' => $i] + $body, ['id' => $cmd['prefix'] . $i] + $options);
                }
                return ['ok' => true, 'bytes' => $bytes, 'ms' => (hrtime(true) - $start) / 1e6];
        }
        return ['ok' => false, 'code' => 'DRIVER', 'message' => 'unknown op ' . $cmd['op']];
    } catch (RawTriggerException $e) {
        return ['ok' => false, 'code' => $e->getErrorCode(), 'message' => $e->getMessage(), 'errno' => $e->getCode()];
    }
}

$input = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$out = isset($input['op']) ? run($input) : array_map('run', $input);
echo json_encode($out, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
