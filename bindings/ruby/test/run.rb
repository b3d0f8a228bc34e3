# run.rb: ctest's entry to the Ruby binding tests: loads every test/test_*.rb and runs minitest,
# failing when no test ran (so a renamed or broken file cannot pass as green).
require 'minitest'

files = Dir[File.join(__dir__, 'test_*.rb')].sort
abort 'run.rb: no test files found' if files.empty?
# The event-call tests need the C event API; CMake says whether it was built (see
# bindings/CMakeLists.txt). A build that has it but an extension without it must fail.
if ENV['SEGBUS_BINDINGS_CLIENT'] == 'ON'
  require 'segbus'
  abort 'run.rb: the build has the event API but the extension lacks it' unless Segbus_ext.respond_to?(:sbrb_send)
else
  files -= [File.join(__dir__, 'test_client.rb')]
end
files.each { |f| require f }

class RanCount < Minitest::AbstractReporter
  attr_reader :count

  def initialize
    super
    @count = 0
  end

  def record(result)
    @count += 1 if result.passed?
  end
end

counter = RanCount.new
Minitest.extensions << 'segbus_count'
Minitest.singleton_class.send(:define_method, :plugin_segbus_count_init) { |_| reporter << counter }
ok = Minitest.run(ARGV)
if ok && counter.count.zero?
  warn 'run.rb: no test passed (none defined?): failing'
  exit 1
end
exit(ok ? 0 : 1)
