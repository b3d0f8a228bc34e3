# sink.rb: the Ruby tests' handle on bindings/tests/sink.c (the real registry and ring reader
# standing in for segbusd): records as [producer id, event decoded with the msgpack gem].
require 'msgpack'
require 'timeout'

class Sink
  BIN = File.join(ENV.fetch('SEGBUS_BINARY_DIR', ''), 'bindings', 'tests', 'segbus_test_sink')

  attr_reader :path, :records

  def initialize(path, *args)
    @path = path
    @out, w = IO.pipe
    @pid = Process.spawn(BIN, path, *args, out: w, err: $stderr)
    w.close
    @records = []
    @mutex = Mutex.new
    @cond = ConditionVariable.new
    @reader = Thread.new { read_loop }
    deadline = Time.now + 5
    sleep 0.002 until File.exist?(path) || Time.now > deadline
    raise "sink did not start on #{path}" unless File.exist?(path)
  end

  def read_loop
    loop do
      head = @out.read(8)
      break if head.nil? || head.bytesize < 8
      len, producer = head.unpack('L<L<')
      event = MessagePack.unpack(@out.read(len))
      @mutex.synchronize do
        @records << [producer, event]
        @cond.broadcast
      end
    end
  end

  def wait(n, timeout = 10)
    deadline = Time.now + timeout
    @mutex.synchronize do
      while @records.size < n
        left = deadline - Time.now
        raise Minitest::Assertion, "sink got #{@records.size} records, expected #{n}" if left <= 0
        @cond.wait(@mutex, left)
      end
      @records.first(n).map { |r| r[1] }
    end
  end

  def pause
    Process.kill('STOP', @pid)
  end

  def resume
    Process.kill('CONT', @pid)
  end

  def close
    Process.kill('CONT', @pid)
    Process.kill('TERM', @pid)
    Process.wait(@pid)
    @reader.join(10)
  end
end
