{
  "targets": [
    {
      "target_name": "rawtrigger_fire",
      "sources": ["fire.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
