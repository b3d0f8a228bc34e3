# test_client.rb: Segbus::Analytics (analytics-ruby's API) checked on what reaches the ring: the
# sink reads each event back and the msgpack gem decodes it; every error path writes nothing.
require 'minitest'
require 'tmpdir'
require 'fileutils'
require 'json'
require 'stringio'
require 'rbconfig'
require 'segbus'
require_relative 'sink'

class TestClient < Minitest::Test
  ORDER = JSON.parse(File.read(File.expand_path('../../../tests/data/order_completed.json', __dir__)), symbolize_names: true).freeze
  LIBRARY = { 'name' => 'segbus', 'version' => Segbus::VERSION }.freeze
  UUID7 = /\A\h{8}-\h{4}-7\h{3}-[89ab]\h{3}-\h{12}\z/.freeze

  def setup
    @dir = Dir.mktmpdir
    @sink = Sink.new(File.join(@dir, 'segbus.sock'))
    @errors = []
    @analytics = Segbus::Analytics.new(write_key: 'wk-rb', socket: @sink.path, standalone: false,
                                       on_error: proc { |status, err| @errors << [status, err] })
  end

  def teardown
    @analytics.close
    @sink.close
    FileUtils.remove_entry(@dir)
  end

  def stringify(h)
    JSON.parse(JSON.generate(h))
  end

  def assert_nothing_written(before)
    assert @analytics.track(user_id: 'sentinel', event: 'Sentinel')
    assert_equal 'Sentinel', @sink.wait(before + 1)[before]['event']
  end

  def test_track_order_completed_round_trip
    assert_equal true, @analytics.track(user_id: 'user-1', event: 'Order Completed', properties: ORDER)
    event = @sink.wait(1)[0]
    assert_equal 'track', event['type']
    assert_equal 'user-1', event['userId']
    assert_equal 'Order Completed', event['event']
    assert_equal stringify(ORDER), event['properties']
    assert_equal({ 'library' => LIBRARY }, event['context'])
    assert_equal 'wk-rb', event['writeKey']
    assert_match UUID7, event['messageId']
    assert_match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/, event['timestamp'])
  end

  def test_every_call_type_round_trip
    ts = Time.utc(2026, 11, 28, 14, 13, 30.123r)
    common = { context: { ip: '10.0.0.1' }, timestamp: ts, integrations: { All: false } }
    assert @analytics.track(user_id: 'u1', event: 'Signed Up', properties: { plan: 'pro' }, message_id: 'm1', **common)
    assert @analytics.identify(user_id: 'u1', traits: { email: 'a@example.com' }, message_id: 'm2', **common)
    assert @analytics.group(user_id: 'u1', group_id: 'g1', traits: { name: 'Acme' }, message_id: 'm3', **common)
    assert @analytics.alias(previous_id: 'anon-1', user_id: 'u1', message_id: 'm4', **common)
    assert @analytics.page(user_id: 'u1', name: 'Install', category: 'Docs', properties: { url: 'https://x' }, message_id: 'm5', **common)
    assert @analytics.screen(user_id: 'u1', name: 'Home', properties: { x: 1 }, message_id: 'm6', **common)
    assert @analytics.track('anonymous_id' => 'anon-2', 'event' => 'String Keys', 'message_id' => 'm7')
    events = @sink.wait(7)
    assert_equal %w[track identify group alias page screen track], events.map { |e| e['type'] }
    assert_equal %w[m1 m2 m3 m4 m5 m6 m7], events.map { |e| e['messageId'] }
    events.first(6).each do |e|
      assert_equal '2026-11-28T14:13:30.123+00:00', e['timestamp']
      assert_equal({ 'ip' => '10.0.0.1', 'library' => LIBRARY }, e['context'])
      assert_equal({ 'All' => false }, e['integrations'])
    end
    assert_equal({ 'email' => 'a@example.com' }, events[1]['traits'])
    assert_equal 'g1', events[2]['groupId']
    assert_equal %w[anon-1 u1], events[3].values_at('previousId', 'userId')
    assert_equal %w[Install Docs], events[4].values_at('name', 'category')
    assert_equal 'Home', events[5]['name']
    assert_equal 'anon-2', events[6]['anonymousId']
    refute events[6].key?('userId')
  end

  def test_unserialisable_value_dropped_and_counted
    logged = StringIO.new
    Segbus.logger = Logger.new(logged)
    assert @analytics.track(user_id: 'u', event: 'Partly Bad', properties: { good: 1, bad: Object.new })
    assert_equal({ 'good' => 1 }, @sink.wait(1)[0]['properties'])
    assert_includes logged.string, 'properties.bad: no JSON form'
    assert_equal 1, @analytics.stats[:dropped_values]
  ensure
    Segbus.logger = nil
  end

  def test_bad_arguments_raise_argument_error_and_write_nothing
    cases = [
      [-> { @analytics.track(event: 'E') }, /Must supply either user_id or anonymous_id/],
      [-> { @analytics.track(user_id: 'u') }, /event must be given/],
      [-> { @analytics.track(user_id: 'u', event: '') }, /event must be given/],
      [-> { @analytics.track(user_id: 'u', event: 'E', properties: [1]) }, /properties must be a Hash/],
      [-> { @analytics.track(user_id: 'u', event: 'E', context: 'x') }, /context must be a Hash/],
      [-> { @analytics.track(user_id: 'u', event: 'E', integrations: 1) }, /integrations must be a Hash/],
      [-> { @analytics.track(user_id: 'u', event: 'E', timestamp: 5) }, /Timestamp must be a Time/],
      [-> { @analytics.track(user_id: 'u', event: 'E', timestamp: 'soon') }, /Timestamp/],
      [-> { @analytics.track(user_id: 'u', event: 'E', message_id: 'x' * 101) }, /message_id must be 1 to 100/],
      [-> { @analytics.identify(user_id: 'u', traits: 'x') }, /traits must be a Hash/],
      [-> { @analytics.group(user_id: 'u') }, /group_id must be given/],
      [-> { @analytics.alias(user_id: 'u') }, /previous_id must be given/],
      [-> { @analytics.alias(previous_id: 'p') }, /user_id must be given/],
      [-> { @analytics.page(user_id: 'u', name: 5) }, /name must be a String/],
      [-> { @analytics.track(user_id: 'u', event: 'Huge', properties: { blob: 'x' * 40_000 }) }, /32kb limit/],
      [-> { @analytics.track('not a hash') }, /Attributes must be a Hash/]
    ]
    cases.each do |call, pattern|
      e = assert_raises(ArgumentError) { call.call }
      assert_match pattern, e.message
    end
    assert_nothing_written(0)
  end

  def test_strict_mode_raises_type_error
    strict = Segbus::Analytics.new(socket: @sink.path, strict: true, standalone: false)
    e = assert_raises(TypeError) { strict.track(user_id: 'u', event: 'E', properties: { x: [Object.new] }) }
    assert_match(/properties\.x\[0\]: no JSON form/, e.message)
    assert_nothing_written(0)
  end

  def test_stub_checks_but_records_nothing
    stub = Segbus::Analytics.new(stub: true)
    assert stub.track(user_id: 'u', event: 'Stubbed')
    assert_raises(ArgumentError) { stub.track(event: 'No Id') }
    assert_nothing_written(0)
  end

  def test_flush_and_close_then_more_calls
    200.times { |i| @analytics.track(user_id: 'u', event: 'Bulk', properties: { i: i }) }
    assert @analytics.flush(5)
    assert_equal 200, @sink.wait(200).size
    @analytics.close
    assert @analytics.track(user_id: 'u', event: 'After Close')
    assert_equal 'After Close', @sink.wait(201)[200]['event']
  end

  def test_full_ring_returns_false_and_calls_on_error
    small = Sink.new(File.join(@dir, 'small.sock'), '--capacity', '65536')
    errors = []
    a = Segbus::Analytics.new(socket: small.path, standalone: false, on_error: proc { |s, e| errors << [s, e] })
    logged = StringIO.new
    Segbus.logger = Logger.new(logged)
    small.pause
    results = Array.new(200) { a.track(user_id: 'u', event: 'Fill', properties: { pad: 'z' * 1000 }) }
    small.resume
    assert_includes logged.string, 'event not recorded: ring full'
    Segbus.logger = nil
    assert_equal true, results.first
    assert_equal false, results.last
    assert_equal results.count(false), errors.size
    assert_equal results.count(true), small.wait(results.count(true)).size
    a.close
    small.close
  end

  def test_fork_parent_and_child_all_arrive
    @analytics.track(user_id: 'p', event: 'Before', properties: { src: 'parent', seq: 0 })
    pids = Array.new(2) do |k|
      fork do
        ok = (0...100).all? { |i| @analytics.track(user_id: 'c', event: 'Child', properties: { src: "child#{k}", seq: i }) }
        exit!(ok && @analytics.flush(5) ? 0 : 3)
      end
    end
    (1..50).each { |i| @analytics.track(user_id: 'p', event: 'After', properties: { src: 'parent', seq: i }) }
    pids.each { |pid| assert_equal 0, Process.wait2(pid)[1].exitstatus }
    events = @sink.wait(251)
    seqs = events.group_by { |e| e['properties']['src'] }.transform_values { |es| es.map { |e| e['properties']['seq'] } }
    assert_equal (0..50).to_a, seqs['parent']
    assert_equal (0...100).to_a, seqs['child0']
    assert_equal (0...100).to_a, seqs['child1']
    producers = @sink.records.group_by { |_, e| e['properties']['src'] }.transform_values { |rs| rs.map(&:first).uniq }
    assert(producers.values.all? { |p| p.size == 1 })
    assert_equal 3, producers.values.flatten.uniq.size
  end

  def test_many_processes_writing_at_once
    script = <<~RUBY
      require 'segbus'
      a = Segbus::Analytics.new(socket: ARGV[0], standalone: false)
      Integer(ARGV[2]).times { |i| a.track(user_id: 'w', event: 'Concurrent', properties: { src: ARGV[1], seq: i }) or exit!(3) }
      exit!(a.flush(10) ? 0 : 4)
    RUBY
    lib = $LOAD_PATH.find { |p| File.exist?(File.join(p, 'segbus.rb')) }
    pids = Array.new(4) { |k| Process.spawn(RbConfig.ruby, "-I#{lib}", '-e', script, @sink.path, "w#{k}", '1500') }
    pids.each { |pid| assert_equal 0, Process.wait2(pid)[1].exitstatus }
    seqs = @sink.wait(6000, 30).group_by { |e| e['properties']['src'] }.transform_values { |es| es.map { |e| e['properties']['seq'] } }
    assert_equal %w[w0 w1 w2 w3], seqs.keys.sort
    seqs.each_value { |s| assert_equal (0...1500).to_a, s }
  end
end

class TestNoDaemon < Minitest::Test
  def test_refused_without_standalone_and_recorded_with_it
    Dir.mktmpdir do |dir|
      missing = File.join(dir, 'none.sock')
      e = assert_raises(RuntimeError) { Segbus::Analytics.new(socket: missing, standalone: false) }
      assert_match(/no segbusd/, e.message)
      alone = Segbus::Analytics.new(socket: missing, flush_timeout: 0.1)
      assert alone.track(user_id: 'u', event: 'Alone')
      assert_equal 1, alone.stats[:sent]
      assert_equal false, alone.flush
      alone.close # bounded too
    end
  end
end
