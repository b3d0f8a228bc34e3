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
    err_r, err_w = IO.pipe
    @pid = Process.spawn(BIN, path, *args, out: w, err: err_w)
    w.close
    err_w.close
    @records = []
    @mutex = Mutex.new
    @cond = ConditionVariable.new
    @reader = Thread.new { read_loop }
    # It prints "sink: ready" once it listens (the socket file exists a moment before that).
    ready = Timeout.timeout(5) { err_r.gets }
    raise "sink did not start on #{path}: #{ready.inspect}" unless ready&.start_with?('sink: ready')
    @err_thread = Thread.new { IO.copy_stream(err_r, $stderr) }
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
