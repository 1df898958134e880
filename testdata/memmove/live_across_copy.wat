;; An http-wasm guest that shows whether the host's compiled memory.copy keeps
;; the guest's values: handle_request computes ten values, copies 4 KiB to a
;; 16-byte-aligned destination (the size and alignment on which Go's memmove
;; takes its REP MOVS path), then uses every value again, as a sum and as an
;; address. If the host lost a register across the copy, the sum differs and
;; the guest traps (Traefik answers 500 "wasm error: unreachable") or the
;; store goes astray. A sound host answers 200 to every request.
(module
  (memory (export "memory") 1)
  (global $seed (mut i32) (i32.const 7))
  (global $expected (mut i32) (i32.const 0))

  ;; The ten values and their sum, from the seed; `$copy` copies 4 KiB
  ;; between computing them and summing them.
  (func $sum (param $copy i32) (result i32)
    (local $a i32) (local $b i32) (local $c i32) (local $d i32) (local $e i32)
    (local $f i32) (local $g i32) (local $h i32) (local $i i32) (local $k i32)
    (local.set $a (i32.add (global.get $seed) (i32.const 1)))
    (local.set $b (i32.mul (local.get $a) (i32.const 3)))
    (local.set $c (i32.add (local.get $b) (i32.const 5)))
    (local.set $d (i32.xor (local.get $c) (i32.const 0x55)))
    (local.set $e (i32.add (local.get $d) (local.get $a)))
    (local.set $f (i32.mul (local.get $e) (i32.const 7)))
    (local.set $g (i32.add (local.get $f) (local.get $b)))
    (local.set $h (i32.sub (local.get $g) (local.get $c)))
    (local.set $i (i32.add (local.get $h) (i32.const 11)))
    (local.set $k (i32.and (local.get $i) (i32.const 0xff0)))
    (if (local.get $copy)
      (then (memory.copy (i32.const 8192) (i32.const 0) (i32.const 4096))))
    (i32.store (local.get $k) (local.get $a))
    (i32.add
      (i32.add
        (i32.add (i32.add (local.get $a) (local.get $b)) (i32.add (local.get $c) (local.get $d)))
        (i32.add (i32.add (local.get $e) (local.get $f)) (i32.add (local.get $g) (local.get $h))))
      (i32.add (local.get $i) (i32.load (local.get $k)))))

  (func $init (global.set $expected (call $sum (i32.const 0))))
  (start $init)

  (func (export "handle_request") (result i64)
    (if (i32.ne (call $sum (i32.const 1)) (global.get $expected))
      (then unreachable))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
