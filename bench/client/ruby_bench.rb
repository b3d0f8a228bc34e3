# ruby_bench.rb: bench/client's Ruby row: Segbus::Analytics#track(user_id:, event:, properties:)
# of the seed's "Order Completed" event into the ring, drained by the sink (the real registry and
# ring reader). ROUNDS timed batches of N calls; value = median of the per-call batch means.
# Prints one JSON line. Needs SEGBUS_BUILD (bench/run sets it).
require 'json'
require 'tmpdir'

build = ENV['SEGBUS_BUILD'] || File.expand_path('../../build/release', __dir__)
$LOAD_PATH.unshift(File.join(build, 'bindings', 'ruby', 'lib'))
require 'segbus'

N = Integer(ENV.fetch('SEGBUS_BENCH_N', '1000'))
ROUNDS = Integer(ENV.fetch('SEGBUS_BENCH_ROUNDS', '200'))
WARM = 20
ORDER = JSON.parse(File.read(File.expand_path('../../tests/data/order_completed.json', __dir__)), symbolize_names: true).freeze

sink_bin = File.join(build, 'bindings', 'tests', 'segbus_test_sink')
abort "ruby_bench: no sink at #{sink_bin}" unless File.executable?(sink_bin)
Dir.mktmpdir do |dir|
  path = File.join(dir, 'segbus.sock')
  err_r, err_w = IO.pipe
  sink = Process.spawn(sink_bin, path, '--discard', err: err_w)
  err_w.close
  abort 'ruby_bench: the sink did not start' unless err_r.gets&.start_with?('sink: ready')
  analytics = Segbus::Analytics.new(write_key: 'bench', socket: path, standalone: false)
  samples = []
  cpu = []
  (WARM + ROUNDS).times do |r|
    c0 = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID, :nanosecond)
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
    i = 0
    while i < N
      analytics.track(user_id: 'user-1', event: 'Order Completed', properties: ORDER)
      i += 1
    end
    dt = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t0
    next if r < WARM

    samples << dt.to_f / N
    cpu << (Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID, :nanosecond) - c0).to_f / N
  end
  stats = analytics.stats
  analytics.flush(10)
  Process.kill('TERM', sink)
  Process.wait(sink)
  s = samples.sort
  med = s[s.size / 2]
  not_taken = stats[:full] + stats[:dropped]
  puts JSON.generate(suite: 'client', case: 'ruby Segbus::Analytics#track Order Completed',
                     unit: 'ns/call', value: med.round(1), p99: s[(s.size * 0.99).to_i.clamp(0, s.size - 1)].round(1),
                     cpu_ns: cpu.sort[cpu.size / 2].round(1), load: File.read('/proc/loadavg').split[0].to_f,
                     goal: '<= 3000', met: med <= 3000 && not_taken.zero?, sent: stats[:sent],
                     not_taken: not_taken)
end
